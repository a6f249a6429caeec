package exchangelog

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
)

// entry checks one entry (checks 2, 4 and 5) and adds it to the summary.
func (v *verifier) entry(index uint64, b []byte) error {
	e, err := ParseEntry(b)
	if err != nil {
		return entryErr(index, "%v", err)
	}
	at := e.header().Time
	v.lastExchange = e.ExchangeID()
	objs := map[string]certs.Identity{}
	for _, s := range signedObjects(e) {
		id, err := v.signed(index, at, s.name, s.s)
		if err != nil {
			return err
		}
		objs[s.name] = id
	}
	partner := func(field, division string) error {
		id := objs[field]
		if id.Role != certs.RolePartner || id.Division != division {
			return entryErr(index, "%s is signed by %s, not by a certificate of partner %s", field, describe(id), division)
		}
		return nil
	}
	switch e := e.(type) {
	case *ExchangeEntry:
		if err := partner("request", e.From); err != nil {
			return err
		}
		v.refs[index] = ref{kind: KindExchange, to: e.To, translated: e.Translated.Digest}
		v.parts[e.From], v.parts[e.To] = true, true
	case *StatusEntry:
		if err := partner("request", e.From); err != nil {
			return err
		}
		v.refs[index] = ref{kind: KindStatus, to: e.To, translated: e.Translated.Digest}
		v.parts[e.From], v.parts[e.To] = true, true
	case *DeniedEntry:
		v.sum.Denials++
		if e.From != "" {
			v.parts[e.From] = true
		}
	case *DeliveredEntry:
		if err := v.delivery(index, e.To, e.Of, &e.Delivery, &e.Ack, partner); err != nil {
			return err
		}
	case *RefusedByPartnerEntry:
		if err := v.delivery(index, e.To, e.Of, &e.Delivery, &e.Ack, partner); err != nil {
			return err
		}
	case *DeadEntry:
		if err := v.of(index, e.Of, e.To); err != nil {
			return err
		}
		v.parts[e.To] = true
	case *RedrivenEntry:
		if err := v.of(index, e.Of, ""); err != nil {
			return err
		}
	case *PolicyActivatedEntry:
		if e.By != e.Request.KeyID {
			return entryErr(index, "by %s is not the key that signed the request (%s)", e.By, e.Request.KeyID)
		}
	case *KeyRotatedEntry:
		der, err := base64.StdEncoding.DecodeString(e.NewCertificate)
		if err != nil {
			return entryErr(index, "new_certificate is not base64: %v", err)
		}
		if _, err := certs.ParseCertificate(der); err != nil {
			return entryErr(index, "new_certificate: %v", err)
		}
		if certs.SM3Hex(der) != e.NewKeyID {
			return entryErr(index, "new_keyid is not the key id of new_certificate")
		}
	}
	if x := e.ExchangeID(); x != "" {
		v.xchg[x] = true
	}
	v.sum.Entries++
	v.sum.ByKind[e.kind()]++
	if v.sum.First.IsZero() || at.Before(v.sum.First) {
		v.sum.First = at
	}
	if at.After(v.sum.Last) {
		v.sum.Last = at
	}
	return nil
}

func describe(id certs.Identity) string {
	if id.Role == "" {
		return "a certificate without a role"
	}
	s := string(id.Role) + " " + id.Name
	if id.Division != "" {
		s += " (" + id.Division + ")"
	}
	return s
}

// of checks a cross-reference when its target is in the bundle (check 5)
// and returns ok false (counted as skipped) when it is not.
func (v *verifier) ofRef(index, of uint64) (ref, bool, error) {
	if of >= index {
		return ref{}, false, entryErr(index, "of %d is not an earlier entry", of)
	}
	r, ok := v.refs[of]
	if !ok {
		v.sum.Skipped++
		return ref{}, false, nil
	}
	return r, true, nil
}

func (v *verifier) of(index, of uint64, to string) error {
	r, ok, err := v.ofRef(index, of)
	if err != nil || !ok {
		return err
	}
	if to != "" && r.to != to {
		return entryErr(index, "to %s, but entry %d went to %s", to, of, r.to)
	}
	return nil
}

// delivery checks a delivered or refused_by_partner entry (check 4).
func (v *verifier) delivery(index uint64, to string, of uint64, d, ack *Signed, partner func(field, division string) error) error {
	v.parts[to] = true
	if err := partner("ack", to); err != nil {
		return err
	}
	status, err := baseLine(ack.SignatureBase, `"@status"`)
	if err != nil || status != "200" {
		return entryErr(index, `ack's base has no "@status": 200 line`)
	}
	for _, c := range []string{`"@method"`, `"@target-uri"`, `"content-digest"`} {
		want, err := baseLine(d.SignatureBase, c)
		if err != nil {
			return entryErr(index, "delivery's base: %v", err)
		}
		got, err := baseLine(ack.SignatureBase, c+";req")
		if err != nil {
			return entryErr(index, "ack's base: %v", err)
		}
		if got != want {
			return entryErr(index, "ack's %s;req line %q differs from the delivery's %q", c, got, want)
		}
	}
	r, ok, err := v.ofRef(index, of)
	if err != nil || !ok {
		return err
	}
	if r.kind != KindExchange && r.kind != KindStatus {
		return entryErr(index, "of %d is a %s entry, not an exchange or status", of, r.kind)
	}
	if d.Digest != r.translated {
		return entryErr(index, "delivery digest %s is not the translated digest %s of entry %d", d.Digest, r.translated, of)
	}
	if r.to != to {
		return entryErr(index, "to %s, but entry %d went to %s", to, of, r.to)
	}
	return nil
}

var keyIDParam = regexp.MustCompile(`;keyid="([^"]*)"`)

// signed checks one signed object (checks 2 and 4): certificate known,
// chaining and valid at the entry's time, signature over the base, the
// base's content-digest equal to the digest, and the base's keyid parameter
// naming the same key.
func (v *verifier) signed(index uint64, at time.Time, name string, s *Signed) (certs.Identity, error) {
	cert, ok := v.byKeyID[s.KeyID]
	if !ok {
		return certs.Identity{}, entryErr(index, "%s: no certificate with key id %s in the bundle", name, s.KeyID)
	}
	if _, err := v.ts.Lookup(s.KeyID, at); err != nil {
		return certs.Identity{}, entryErr(index, "%s: certificate %s not usable at %s: %v", name, v.nameOf[s.KeyID], rfc3339(at), err)
	}
	v.used[s.KeyID] = true
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
	if err != nil {
		return certs.Identity{}, entryErr(index, "%s: signature is not base64", name)
	}
	if err := certs.VerifySignature(cert, []byte(s.SignatureBase), sig); err != nil {
		return certs.Identity{}, entryErr(index, "%s: signature does not verify with %s: %v", name, v.nameOf[s.KeyID], err)
	}
	cd, err := baseLine(s.SignatureBase, `"content-digest"`)
	if err != nil {
		return certs.Identity{}, entryErr(index, "%s: %v", name, err)
	}
	b64, ok := strings.CutPrefix(cd, "sm3=:")
	if ok {
		b64, ok = strings.CutSuffix(b64, ":")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	want, _ := hex.DecodeString(s.Digest)
	if !ok || err != nil || !bytes.Equal(raw, want) {
		return certs.Identity{}, entryErr(index, "%s: the base's content-digest %q is not the digest %s", name, cd, s.Digest)
	}
	params, err := baseLine(s.SignatureBase, `"@signature-params"`)
	if err != nil {
		return certs.Identity{}, entryErr(index, "%s: %v", name, err)
	}
	if m := keyIDParam.FindStringSubmatch(params); m == nil || m[1] != s.KeyID {
		return certs.Identity{}, entryErr(index, "%s: the base's keyid parameter is not %s", name, s.KeyID)
	}
	return v.ident[s.KeyID], nil
}

// baseLine returns the value of the one line of an RFC 9421 signature base
// for the component identifier id (e.g. `"content-digest"` or
// `"@method";req`).
func baseLine(base, id string) (string, error) {
	var val string
	n := 0
	for line := range strings.SplitSeq(base, "\n") {
		if v, ok := strings.CutPrefix(line, id+": "); ok {
			val = v
			n++
		}
	}
	switch n {
	case 0:
		return "", fmt.Errorf("no %s line in the signature base", id)
	case 1:
		return val, nil
	}
	return "", fmt.Errorf("%d %s lines in the signature base", n, id)
}
