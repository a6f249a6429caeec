package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tongban/tongban/gateway"
)

// runCertsRotate is `tongban certs rotate`: replace the gateway's or the
// log's key and record it in the exchange log (gateway.RotateKey).
func runCertsRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("certs rotate", "certs rotate --role gateway|log [--config FILE] [--data DIR] [--cert NEW.pem --key NEW.key]", stderr)
	role := fs.String("role", "", "the key to rotate: gateway (deliveries, receipts) or log (checkpoints)")
	config := fs.String("config", "", "the gateway's YAML configuration (default: embedded defaults)")
	data := fs.String("data", "", "data directory (default ./var)")
	newCert := fs.String("cert", "", "the new certificate (PEM); with --key. Default: a new key issued by the dev CA")
	newKey := fs.String("key", "", "the new private key (PKCS#8 PEM, mode 0600; encrypted with the configured passphrase if the keys are)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *role != gateway.KeyRoleGateway && *role != gateway.KeyRoleLog {
		fs.Usage()
		return 2
	}
	cfg, err := gateway.LoadConfig(*config)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *data != "" {
		cfg.Data = *data
	}
	rot, err := gateway.RotateKey(ctx, cfg, *role, *newCert, *newKey)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "%s key rotated: %s → %s (key_rotated entry %d); the old certificate and key are in %s\n",
		rot.Role, rot.OldKeyID, rot.NewKeyID, rot.LogIndex, rot.Retired)
	fmt.Fprintln(stdout, "restart the gateway to sign with the new key; partners must trust the new certificate before it signs to them")
	return 0
}
