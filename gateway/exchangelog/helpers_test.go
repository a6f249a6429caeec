package exchangelog

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

const (
	nanhai = "440605"
	liwan  = "440103"
	gwURL  = "https://127.0.0.1:8443"
)

var (
	pkiOnce sync.Once
	pkiVal  *certs.DevPKI
	pkiErr  error
)

// devPKI is one development PKI for the whole test binary (made by the
// certs package, as `tongban certs init` makes it).
func devPKI(t testing.TB) *certs.DevPKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := mkTemp()
		if err != nil {
			pkiErr = err
			return
		}
		if pkiErr = certs.InitDevPKI(dir); pkiErr != nil {
			return
		}
		pkiVal, pkiErr = certs.LoadDevPKI(dir)
	})
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

// fixture is a log over a memory store with a controllable clock.
type fixture struct {
	t     testing.TB
	pki   *certs.DevPKI
	store *MemoryStore
	log   *Log
	now   time.Time
	ctx   context.Context
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pki := devPKI(t)
	f := &fixture{t: t, pki: pki, store: NewMemoryStore(), ctx: context.Background(),
		now: time.Now().In(CST).Truncate(time.Second)}
	var err error
	f.log, err = Open(f.ctx, f.store, NewOptions().WithSigner(pki.Log).WithClock(f.clock))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) clock() time.Time { return f.now }

func (f *fixture) tick() time.Time {
	f.now = f.now.Add(time.Second)
	return f.now
}

func (f *fixture) append(e Entry) uint64 {
	f.t.Helper()
	se, err := f.store.Append(f.ctx, e)
	if err != nil {
		f.t.Fatal(err)
	}
	return se.Index
}

func (f *fixture) sync() {
	f.t.Helper()
	f.tick()
	if err := f.log.Sync(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func contentDigest(body []byte) string {
	d := certs.SM3(body)
	return "sm3=:" + base64.StdEncoding.EncodeToString(d[:]) + ":"
}

// sign makes a signed object over a signature base as signing.md lays it out.
func sign(t testing.TB, s *certs.Signer, body []byte, lines []string, components string, created time.Time) Signed {
	t.Helper()
	base := strings.Join(lines, "\n") + "\n" + fmt.Sprintf(`"@signature-params": (%s);created=%d;nonce="%s";keyid="%s";alg="sm2-sm3"`, components, created.Unix(), nonce(), s.KeyID())
	sig, err := s.Sign([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	return Signed{Digest: certs.SM3Hex(body), SignatureBase: base, Signature: base64.StdEncoding.EncodeToString(sig), KeyID: s.KeyID()}
}

func request(t testing.TB, s *certs.Signer, path, contentType string, body []byte, at time.Time) Signed {
	return sign(t, s, body, []string{
		`"@method": POST`,
		`"@target-uri": ` + gwURL + path,
		`"content-digest": ` + contentDigest(body),
		`"content-type": ` + contentType,
	}, `"@method" "@target-uri" "content-digest" "content-type"`, at)
}

// deliveryAndAck signs a delivery of record to a partner by the gateway, and
// the partner's acknowledgement bound to it.
func deliveryAndAck(t testing.TB, gw, partner *certs.Signer, uri string, record, ackBody []byte, at time.Time, status string) (Signed, Signed) {
	d := sign(t, gw, record, []string{
		`"@method": POST`,
		`"@target-uri": ` + uri,
		`"content-digest": ` + contentDigest(record),
		`"content-type": application/json`,
		`"idempotency-key": 01JD0000000000000000000000`,
	}, `"@method" "@target-uri" "content-digest" "content-type" "idempotency-key"`, at)
	a := sign(t, partner, ackBody, []string{
		`"@status": ` + status,
		`"content-digest": ` + contentDigest(ackBody),
		`"content-type": application/json`,
		`"@method";req: POST`,
		`"@target-uri";req: ` + uri,
		`"content-digest";req: ` + contentDigest(record),
	}, `"@status" "content-digest" "content-type" "@method";req "@target-uri";req "content-digest";req`, at)
	return d, a
}

var policyInput = json.RawMessage(`{"from":"440605","to":"440103","item":{"basic_code":"000105001000"},"applicant":{"kind":"ENTERPRISE"},"channel":"COUNTER","materials":["M001","M002","M003","M004"],"time":"2026-11-27T09:45:00+08:00"}`)

var decision = json.RawMessage(`{"allow":true,"mode":"REMOTE_RECEIPT","target_impl_code":"11440103MB2D31010A000105001000","promised_days":6,"missing_materials":[],"reasons":[],"revision":"` + strings.Repeat("ab", 32) + `"}`)

// addExchange logs an accepted case from Nanhai to Liwan and Liwan's
// acknowledgement of its delivery; it returns the exchange id.
func (f *fixture) addExchange(n int) string {
	t := f.t
	id := fmt.Sprintf("01JD%022d", n)
	at := f.now
	body := []byte(fmt.Sprintf("<CASE><PROJECT_NO>NH%08d</PROJECT_NO></CASE>", n))
	record := []byte(fmt.Sprintf(`{"caseId":"NH%08d"}`, n))
	idx := f.append(&ExchangeEntry{Header: Header{Time: at}, Exchange: id, From: nanhai, To: liwan,
		Item: "000105001000", SourceCase: fmt.Sprintf("NH%08d", n), PolicyInput: policyInput, Decision: decision,
		Request:    request(t, f.pki.Nanhai, "/v1/exchanges", "application/xml; charset=GBK", body, at),
		Translated: Digest{Digest: certs.SM3Hex(record)}})
	d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, "https://liwan.example/cases", record, []byte(`{"accepted":true,"caseId":"LW1"}`), at, "200")
	f.append(&DeliveredEntry{Header: Header{Time: at}, Exchange: id, To: liwan, Delivery: d, Ack: a, PartnerCase: fmt.Sprintf("LW%08d", n), Of: idx})
	return id
}

// addStatus logs a status update from Liwan and Nanhai's acknowledgement.
func (f *fixture) addStatus(id string, n int) {
	t := f.t
	at := f.now
	body := []byte(fmt.Sprintf(`{"caseId":"LW%08d","state":"ACCEPTED"}`, n))
	record := []byte(fmt.Sprintf("<STATUS>%d</STATUS>", n))
	idx := f.append(&StatusEntry{Header: Header{Time: at}, Exchange: id, From: liwan, To: nanhai, State: "ACCEPTED",
		Request:    request(t, f.pki.Liwan, "/v1/status", "application/json", body, at),
		Translated: Digest{Digest: certs.SM3Hex(record)}})
	d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Nanhai, "https://nanhai.example/status", record, []byte(`{"RESULT":"0"}`), at, "200")
	f.append(&DeliveredEntry{Header: Header{Time: at}, Exchange: id, To: nanhai, Delivery: d, Ack: a, Of: idx})
}

// addOthers logs one entry of every remaining kind.
func (f *fixture) addOthers(id string) {
	t := f.t
	at := f.now
	bad := []byte("<CASE/>")
	f.append(&DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: request(t, f.pki.Nanhai, "/v1/exchanges", "application/xml; charset=GBK", bad, at),
		Code: "validation_failed", Fields: []string{"PROJECT_NO", "ITEM_CODE"}})
	f.append(&DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: request(t, f.pki.Nanhai, "/v1/exchanges", "application/xml; charset=GBK", bad, at),
		Code: "policy_denied", PolicyInput: policyInput, Decision: json.RawMessage(`{"allow":false,"reasons":["not_cross_district"],"revision":"` + strings.Repeat("cd", 32) + `"}`)})
	ex, _ := f.store.EntriesOfExchange(f.ctx, id)
	record := []byte(`{"late":true}`)
	idx := f.append(&StatusEntry{Header: Header{Time: at}, Exchange: id, From: nanhai, To: liwan, State: "WITHDRAWN",
		Request:    request(t, f.pki.Nanhai, "/v1/status", "application/xml; charset=GBK", []byte("<W/>"), at),
		Translated: Digest{Digest: certs.SM3Hex(record)}})
	f.append(&DeadEntry{Header: Header{Time: at}, Exchange: id, To: liwan, Of: idx, Attempts: 12, LastError: "connection refused"})
	f.append(&RedrivenEntry{Header: Header{Time: at}, Exchange: id, Of: idx, By: f.pki.Admin.KeyID()})
	d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, "https://liwan.example/status", record, []byte(`{"accepted":false}`), at, "200")
	f.append(&RefusedByPartnerEntry{Header: Header{Time: at}, Exchange: id, To: liwan, Delivery: d, Ack: a, Of: idx, Reason: "case closed"})
	_ = ex
	pol := request(t, f.pki.Admin, "/admin/v1/policy/drafts/d1/activate", "application/json", []byte("{}"), at)
	f.append(&PolicyActivatedEntry{Header: Header{Time: at}, Revision: strings.Repeat("ef", 32), Previous: strings.Repeat("ab", 32), By: f.pki.Admin.KeyID(), Request: pol})
	f.append(&KeyRotatedEntry{Header: Header{Time: at}, Role: RoleGateway, OldKeyID: f.pki.Gateway.KeyID(), NewKeyID: f.pki.Gateway.KeyID(),
		NewCertificate: base64.StdEncoding.EncodeToString(f.pki.Gateway.Certificate().Raw)})
}

// build logs n exchanges (with statuses and the other kinds mixed in),
// syncing every `every` exchanges.
func (f *fixture) build(n, every int) []string {
	var ids []string
	for i := 0; i < n; i++ {
		id := f.addExchange(i)
		ids = append(ids, id)
		if i%5 == 4 {
			f.addStatus(id, i)
		}
		if i%50 == 7 {
			f.addOthers(id)
		}
		if i%every == every-1 {
			f.sync()
		}
	}
	f.sync()
	return ids
}

func (f *fixture) exportCerts() ExportCerts {
	return CertsFromTrustStore(f.pki.TrustStore())
}

func (f *fixture) export(from, to time.Time) []byte {
	f.t.Helper()
	var buf bytes.Buffer
	if err := f.log.Export(f.ctx, &buf, from, to, f.exportCerts()); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

// archive is a bundle opened for editing by a forger.
type archive struct {
	names []string
	files map[string][]byte
}

func openArchive(t testing.TB, b []byte) *archive {
	t.Helper()
	a := &archive{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a.names = append(a.names, h.Name)
		a.files[h.Name] = data
	}
	return a
}

func (a *archive) clone() *archive {
	c := &archive{names: append([]string(nil), a.names...), files: map[string][]byte{}}
	for k, v := range a.files {
		c.files[k] = bytes.Clone(v)
	}
	return c
}

// manifest decodes the manifest into a generic map.
func (a *archive) manifest(t testing.TB) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(a.files[manifestFile], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (a *archive) setManifest(t testing.TB, m map[string]any) {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	a.files[manifestFile] = b
}

// redigest recomputes the manifest's file digests, as a forger would.
func (a *archive) redigest(t testing.TB) {
	m := a.manifest(t)
	files := map[string]any{}
	for _, n := range a.names {
		if n != manifestFile {
			files[n] = hexSM3(a.files[n])
		}
	}
	m["files"] = files
	a.setManifest(t, m)
}

func hexSM3(b []byte) string { h := certs.SM3(b); return hex.EncodeToString(h[:]) }

func (a *archive) bytes(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range a.names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(a.files[n])), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(a.files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (a *archive) namesWith(prefix string) []string {
	var out []string
	for _, n := range a.names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func verify(t testing.TB, b []byte, opts *VerifyOptions) (*Summary, error) {
	t.Helper()
	return VerifyBundle(bytes.NewReader(b), opts)
}

var fixedTime = time.Date(2026, 11, 27, 9, 45, 0, 0, CST)
