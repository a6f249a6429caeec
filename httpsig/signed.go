package httpsig

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/tongban/tongban/certs"
)

// Signed is a signed message as the exchange log records it
// (exchange-log.md): the hex SM3 of the body, the RFC 9421 signature base,
// the base64 DER signature and the signer's key id.
type Signed struct {
	Digest        string `json:"digest"`
	SignatureBase string `json:"signature_base"`
	Signature     string `json:"signature"`
	KeyID         string `json:"keyid"`
}

// ParseBase splits a signature base into its lines, keyed by component
// name without quotes, with ";req" appended for request-bound components:
// "@method", "content-digest", "content-digest;req", "@signature-params".
// A line that is not `"name"[;req]: value`, or a name that appears twice,
// is an error.
func ParseBase(base string) (map[string]string, error) {
	if base == "" {
		return nil, errors.New("httpsig: empty signature base")
	}
	out := map[string]string{}
	for i, line := range strings.Split(base, "\n") {
		if len(line) < 2 || line[0] != '"' {
			return nil, fmt.Errorf("httpsig: base line %d is not a component line", i+1)
		}
		end := strings.IndexByte(line[1:], '"')
		if end <= 0 {
			return nil, fmt.Errorf("httpsig: base line %d: bad component name", i+1)
		}
		name := line[1 : 1+end]
		rest := line[2+end:]
		if strings.HasPrefix(rest, ";req") {
			name += ";req"
			rest = rest[len(";req"):]
		}
		if !strings.HasPrefix(rest, ": ") {
			return nil, fmt.Errorf("httpsig: base line %d: missing \": \"", i+1)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("httpsig: base line %d: %q repeated", i+1, name)
		}
		out[name] = rest[2:]
	}
	return out, nil
}

// VerifySigned checks a recorded signed message offline, as an auditor
// does: s.KeyID names cert, the signature verifies over s.SignatureBase with
// cert's key (SM2-with-SM3, default ID), the base's @signature-params line
// carries the same keyid, and the base's "content-digest" line (the one
// without ;req) carries s.Digest in base64. A base without that line (a GET
// or DELETE) must go with the digest of the empty body, or none. Errors are
// the *Error values of this package (ErrKeyUnknown, ErrSignatureMalformed,
// ErrSignatureInvalid, ErrDigestMismatch). Certificate validity at the
// entry's time is the caller's check.
func VerifySigned(s *Signed, cert *certs.Certificate) error {
	if s == nil || cert == nil {
		return ErrSignatureMissing.WithDetail("no signed message or no certificate")
	}
	if s.KeyID != certs.KeyID(cert) {
		return ErrKeyUnknown.WithDetail("keyid does not name this certificate")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
	if err != nil {
		return ErrSignatureMalformed.withCause("signature is not base64", err)
	}
	lines, err := ParseBase(s.SignatureBase)
	if err != nil {
		return ErrSignatureMalformed.withCause("unreadable signature base", err)
	}
	sp, ok := lines["@signature-params"]
	if !ok {
		return ErrSignatureMalformed.WithDetail("signature base has no @signature-params line")
	}
	members, err := parseDictionary(Label + "=" + sp)
	if err != nil || len(members) != 1 || !members[0].inner {
		return ErrSignatureMalformed.WithDetail("unreadable @signature-params")
	}
	if kid, ok := stringParam(members[0].params, "keyid"); !ok || kid != s.KeyID {
		return ErrSignatureMalformed.WithDetail("@signature-params names another keyid")
	}
	if err := certs.VerifySignature(cert, []byte(s.SignatureBase), sig); err != nil {
		if errors.Is(err, certs.ErrSignatureMalformed) {
			return ErrSignatureMalformed.withCause("signature is not strict DER", err)
		}
		return ErrSignatureInvalid.withCause("", err)
	}
	want, err := hex.DecodeString(s.Digest)
	if err != nil || (len(want) != certs.SM3Size && s.Digest != "") {
		return ErrDigestMismatch.WithDetail("digest is not a hex SM3")
	}
	cd, ok := lines["content-digest"]
	if !ok {
		if s.Digest != "" && s.Digest != certs.SM3Hex(nil) {
			return ErrDigestMismatch.WithDetail("base covers no content-digest but the digest is not that of an empty body")
		}
		return nil
	}
	got, err := parseContentDigest(cd)
	if err != nil {
		return ErrSignatureMalformed.withCause("content-digest line", err)
	}
	if hex.EncodeToString(got) != s.Digest {
		return ErrDigestMismatch.WithDetail("the base's content-digest differs from the digest")
	}
	return nil
}

func stringParam(params []sfParam, key string) (string, bool) {
	for _, p := range params {
		if p.key == key && p.val.kind == sfString {
			return p.val.s, true
		}
	}
	return "", false
}
