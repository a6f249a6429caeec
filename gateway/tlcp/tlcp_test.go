package tlcp_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/certs"
	"github.com/tongban/tongban/gateway"
	"github.com/tongban/tongban/gateway/tlcp"
	"github.com/tongban/tongban/sim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSignedSubmissionOverTLCP runs a whole gateway with its TLCP listener
// (dev double certificates issued by the dev CA) and has Nanhai's simulator
// submit a signed case over TLCP with ECC_SM4_CBC_SM3; the signed receipt
// verifies, and the case is delivered to Liwan.
func TestSignedSubmissionOverTLCP(t *testing.T) {
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if err := certs.InitDevPKI(certDir); err != nil {
		t.Fatal(err)
	}
	pki, err := certs.LoadDevPKI(certDir)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	liwanLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	liwanURL := "http://" + liwanLn.Addr().String()
	liwan, err := sim.New(sim.Options{Division: adapters.DivisionLiwan, Signer: pki.Liwan, Trust: pki.TrustStore(), PublicURL: liwanURL, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ls := &httptest.Server{Listener: liwanLn, Config: &http.Server{Handler: liwan, ReadHeaderTimeout: 10 * time.Second}}
	ls.Start()
	defer ls.Close()

	tlcpAddr := freeAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Both listeners answer for one public URL, as behind a load balancer.
	cfg := &gateway.Config{Data: dir, Listen: ln.Addr().String(), PublicURL: "https://tongban.test"}
	cfg.TLCP.Listen = tlcpAddr
	cfg.Delivery.InitialBackoff = 50 * time.Millisecond
	if err := cfg.ApplyDefaults(); err != nil {
		t.Fatal(err)
	}
	cfg.Partners[1].Endpoint = liwanURL
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := gateway.NewServer(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	client, err := tlcp.ClientConfig(filepath.Join(certDir, "ca.pem"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var dialed int
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			dialed++
			return tlcp.Dial(network, tlcpAddr, client)
		},
	}}
	nanhai, err := sim.New(sim.Options{Division: adapters.DivisionNanhai, Signer: pki.Nanhai, Trust: pki.TrustStore(), PublicURL: "http://127.0.0.1:1", HTTPClient: httpClient, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var resp *sim.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		body, _, err := nanhai.NextCase(sim.SampleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err = nanhai.SendCase(ctx, cfg.PublicURL, body)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("over TLCP: %v", err)
		}
	}
	if resp.Status != http.StatusAccepted || resp.Receipt == nil {
		t.Fatalf("answer %d %s", resp.Status, resp.Body)
	}
	if dialed == 0 {
		t.Fatal("the request did not go over the TLCP dialer")
	}
	for deadline := time.Now().Add(10 * time.Second); len(liwan.Received()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the case accepted over TLCP was not delivered")
		}
	}

	// The connection really is TLCP 1.1 with the one suite.
	conn, err := tlcp.Dial("tcp", tlcpAddr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	version, suite, ok := tlcp.State(conn)
	if !ok || version != 0x0101 || suite != tlcp.CipherSuite {
		t.Fatalf("version %#x suite %#x (%v), want 0x0101 and ECC_SM4_CBC_SM3 %#x", version, suite, ok, tlcp.CipherSuite)
	}

	// A client offering only ECDHE_SM4_CBC_SM3 finds no common suite.
	ecdhe := client.Clone()
	ecdhe.CipherSuites = []uint16{0xe011}
	if c, err := tlcp.Dial("tcp", tlcpAddr, ecdhe); err == nil {
		c.Close()
		t.Error("the TLCP listener accepted ECDHE_SM4_CBC_SM3")
	}
	// A standard TLS client cannot talk to it.
	tc, err := tls.Dial("tcp", tlcpAddr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		tc.Close()
		t.Error("a standard TLS handshake succeeded on the TLCP listener")
	}
}
