package exchangelog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/transparency-dev/merkle/proof"
)

func TestExport10000EntriesVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 entries")
	}
	f := newFixture(t)
	start := f.now
	for f.store.entriesLen() < 10_000 {
		f.addExchange(f.store.entriesLen())
		if f.store.entriesLen()%500 == 0 {
			f.sync()
		}
	}
	f.addOthers(fmt.Sprintf("01JD%022d", 0))
	f.sync()
	b := f.export(start, f.now)
	s, err := verify(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries < 10_000 || s.EndIndex != uint64(s.Entries) || s.Skipped != 0 {
		t.Errorf("summary %+v", s)
	}
	// With the log certificate given out of band, and with a wrong one.
	if _, err := verify(t, b, NewVerifyOptions().WithLogCertificates(f.pki.Log.Certificate())); err != nil {
		t.Errorf("--log-key log.pem: %v", err)
	}
	if _, err := verify(t, b, NewVerifyOptions().WithLogCertificates(f.pki.Gateway.Certificate())); !errors.Is(err, ErrBundleInvalid) {
		t.Errorf("--log-key gateway.pem: %v", err)
	}
}

func (m *MemoryStore) entriesLen() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.entries)
}

func TestExportFromTheMiddle(t *testing.T) {
	f := newFixture(t)
	f.build(10, 3)
	// An exchange whose acknowledgement is logged after the next checkpoint.
	at := f.now
	record := []byte(`{"caseId":"split"}`)
	idx := f.append(&ExchangeEntry{Header: Header{Time: at}, Exchange: "split", From: nanhai, To: liwan, Item: "000105001000",
		SourceCase: "NHsplit", PolicyInput: policyInput, Decision: decision,
		Request: request(t, f.pki.Nanhai, "/v1/exchanges", "application/xml", []byte("<x/>"), at), Translated: Digest{certs.SM3Hex(record)}})
	f.sync()
	from := f.now
	firstIndex := f.log.Size()
	d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, "https://liwan.example/cases", record, []byte(`{"accepted":true}`), f.now, "200")
	f.append(&DeliveredEntry{Header: Header{Time: f.now}, Exchange: "split", To: liwan, Delivery: d, Ack: a, Of: idx})
	for i := 50; i < 56; i++ {
		f.addExchange(i)
		f.sync()
	}
	b := f.export(from, f.now)
	s, err := verify(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.FirstIndex != firstIndex || s.EndIndex != f.log.Size() || s.Skipped != 1 {
		t.Errorf("first %d end %d skipped %d, want %d %d 1", s.FirstIndex, s.EndIndex, s.Skipped, firstIndex, f.log.Size())
	}
	a2 := openArchive(t, b)
	m := a2.manifest(t)
	if len(m["prefix"].([]any)) == 0 {
		t.Error("no prefix")
	}
	// A period before any checkpoint: first_index 0.
	if s, err := verify(t, f.export(f.now.Add(-time.Hour), f.now), nil); err != nil || s.FirstIndex != 0 {
		t.Errorf("from before the log: %v %+v", err, s)
	}
	// A period after the last checkpoint: empty, still verifies.
	if s, err := verify(t, f.export(f.now.Add(time.Hour), f.now.Add(2*time.Hour)), nil); err != nil || s.Entries != 0 {
		t.Errorf("empty export: %v %+v", err, s)
	}
	var buf bytes.Buffer
	if err := f.log.Export(f.ctx, &buf, f.now, from, f.exportCerts()); !errors.Is(err, ErrBadRange) {
		t.Errorf("reversed period: %v", err)
	}
}

func TestNaiveRecomputationOfExport(t *testing.T) {
	f := newFixture(t)
	start := f.now
	f.build(7, 100)
	a := openArchive(t, f.export(start, f.now))
	lines := bytes.Split(bytes.TrimSuffix(a.files[entriesFile], []byte("\n")), []byte("\n"))
	cps := a.namesWith(checkpointsDir)
	last := a.files[cps[len(cps)-1]]
	body, _, _, _ := splitNote(t, last)
	parts := strings.Split(string(body), "\n")
	if want := base64.StdEncoding.EncodeToString(naiveRoot(lines)); parts[2] != want || parts[1] != fmt.Sprint(len(lines)) {
		t.Fatalf("checkpoint %q, naive root of %d entries %s", body, len(lines), want)
	}
}

// smallExport is a short log exported whole, and its archive.
func smallExport(t *testing.T) (*fixture, []byte, *archive) {
	f := newFixture(t)
	start := f.now
	f.build(3, 1)
	b := f.export(start, f.now)
	if _, err := verify(t, b, nil); err != nil {
		t.Fatal(err)
	}
	return f, b, openArchive(t, b)
}

// mustFail verifies a forged archive, with the manifest's digests as they
// are and recomputed, and checks the error names one of names.
func mustFail(t *testing.T, what string, a *archive, names ...string) {
	t.Helper()
	for _, redigest := range []bool{false, true} {
		c := a.clone()
		if redigest {
			c.redigest(t)
		}
		_, err := verify(t, c.bytes(t), nil)
		if !errors.Is(err, ErrBundleInvalid) {
			t.Fatalf("%s (redigest %v): verified, err %v", what, redigest, err)
		}
		ok := false
		for _, n := range names {
			ok = ok || strings.Contains(err.Error(), n)
		}
		if !ok {
			t.Fatalf("%s (redigest %v): error %q names none of %v", what, redigest, err, names)
		}
	}
}

func TestEverySingleByteChangeFails(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of verifications")
	}
	_, _, a := smallExport(t)
	lines := bytes.SplitAfter(a.files[entriesFile], []byte("\n"))
	// Every byte of the second entry (a delivered entry with two signatures).
	off := len(lines[0])
	for i := off; i < off+len(lines[1]); i++ {
		c := a.clone()
		c.files[entriesFile][i] ^= 0x01
		mustFail(t, fmt.Sprintf("entries.jsonl byte %d", i), c, entriesFile, "entry ", checkpointsDir)
	}
	cp := a.namesWith(checkpointsDir)[1]
	for i := range a.files[cp] {
		c := a.clone()
		c.files[cp][i] ^= 0x01
		mustFail(t, fmt.Sprintf("%s byte %d", cp, i), c, cp)
	}
	for _, cert := range a.namesWith(certsDir) {
		for i := range a.files[cert] {
			c := a.clone()
			c.files[cert][i] ^= 0x01
			mustFail(t, fmt.Sprintf("%s byte %d", cert, i), c, cert)
		}
	}
}

func TestChangedClaimsFail(t *testing.T) {
	f := newFixture(t)
	f.build(6, 2)
	from := f.now
	f.build(6, 2)
	a := openArchive(t, f.export(from, f.now))
	if _, err := verify(t, a.bytes(t), nil); err != nil {
		t.Fatal(err)
	}
	m := a.manifest(t)
	anchors := m["trust_anchors"].([]any)
	logs := m["log_certificates"].([]any)
	var leaf string
	for _, n := range a.namesWith(certsDir) {
		if strings.Contains(n, "partner-") {
			leaf = n
		}
	}
	edit := func(name string, change func(m map[string]any), names ...string) {
		c := a.clone()
		mm := c.manifest(t)
		change(mm)
		c.setManifest(t, mm)
		mustFail(t, name, c, names...)
	}
	num := func(k string) float64 { return m[k].(float64) }
	edit("first_index+1", func(m map[string]any) { m["first_index"] = num("first_index") + 1 }, manifestFile, entriesFile)
	edit("first_index-1", func(m map[string]any) { m["first_index"] = num("first_index") - 1 }, manifestFile, entriesFile)
	edit("end_index-1", func(m map[string]any) { m["end_index"] = num("end_index") - 1 }, manifestFile, entriesFile)
	edit("end_index+1", func(m map[string]any) { m["end_index"] = num("end_index") + 1 }, manifestFile, entriesFile)
	edit("prefix hash changed", func(m map[string]any) {
		p := m["prefix"].([]any)
		h, _ := base64.StdEncoding.DecodeString(p[0].(string))
		h[0] ^= 1
		p[0] = base64.StdEncoding.EncodeToString(h)
	}, manifestFile, checkpointsDir)
	edit("prefix hash dropped", func(m map[string]any) { m["prefix"] = m["prefix"].([]any)[1:] }, manifestFile)
	edit("prefix emptied", func(m map[string]any) { m["prefix"] = []any{} }, manifestFile)
	edit("anchor removed", func(m map[string]any) { m["trust_anchors"] = []any{} }, certsDir)
	edit("leaf as anchor", func(m map[string]any) { m["trust_anchors"] = append(anchors, leaf) }, leaf)
	edit("anchor twice", func(m map[string]any) { m["trust_anchors"] = append(anchors, anchors[0]) }, manifestFile)
	edit("log certificate removed", func(m map[string]any) { m["log_certificates"] = []any{} }, checkpointsDir)
	edit("partner as log certificate", func(m map[string]any) { m["log_certificates"] = append(logs, leaf) }, leaf)
	edit("log certificate missing file", func(m map[string]any) { m["log_certificates"] = []any{"certs/none.pem"} }, manifestFile)
	edit("origin", func(m map[string]any) { m["origin"] = "tongban/other" }, checkpointsDir)
	edit("unknown key", func(m map[string]any) { m["comment"] = "x" }, manifestFile)
	edit("kind evidence", func(m map[string]any) { m["kind"] = "evidence" }, manifestFile)

	// File digests: one changed (the forger cannot recompute here).
	c := a.clone()
	mm := c.manifest(t)
	files := mm["files"].(map[string]any)
	files[entriesFile] = strings.Repeat("0", 64)
	c.setManifest(t, mm)
	if _, err := verify(t, c.bytes(t), nil); err == nil || !strings.Contains(err.Error(), entriesFile) {
		t.Errorf("changed digest: %v", err)
	}
	// A digest for a file not in the bundle; a file without a digest.
	c = a.clone()
	mm = c.manifest(t)
	mm["files"].(map[string]any)["certs/extra.pem"] = strings.Repeat("0", 64)
	c.setManifest(t, mm)
	if _, err := verify(t, c.bytes(t), nil); err == nil || !strings.Contains(err.Error(), "certs/extra.pem") {
		t.Errorf("listed missing file: %v", err)
	}
	c = a.clone()
	c.names = append(c.names, "notes.txt")
	c.files["notes.txt"] = []byte("hi")
	if _, err := verify(t, c.bytes(t), nil); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("unlisted file: %v", err)
	}
	// A certificate nothing needs.
	c = a.clone()
	c.names = append(c.names, "certs/auditor.pem")
	c.files["certs/auditor.pem"] = certs.EncodeCertificatePEM(f.pki.Auditor.Certificate())
	mustFail(t, "unneeded certificate", c, "certs/auditor.pem")
	// The last checkpoint removed.
	c = a.clone()
	cps := c.namesWith(checkpointsDir)
	delete(c.files, cps[len(cps)-1])
	c.names = removeName(c.names, cps[len(cps)-1])
	mustFail(t, "last checkpoint removed", c, manifestFile, checkpointsDir)

	// Entries removed, duplicated, reordered.
	lines := bytes.SplitAfter(a.files[entriesFile], []byte("\n"))
	lines = lines[:len(lines)-1]
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	withEntries := func(ls [][]byte) *archive {
		c := a.clone()
		c.files[entriesFile] = join(ls)
		return c
	}
	n := len(lines)
	mustFail(t, "first entry removed", withEntries(lines[1:]), entriesFile)
	mustFail(t, "last entry removed", withEntries(lines[:n-1]), entriesFile)
	mid := append(append([][]byte{}, lines[:3]...), lines[4:]...)
	mustFail(t, "middle entry removed", withEntries(mid), entriesFile)
	swapped := append([][]byte{}, lines...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	mustFail(t, "entries reordered", withEntries(swapped), entriesFile, checkpointsDir, "entry ")
	dup := append(append([][]byte{}, lines[:n-1]...), lines[n-2])
	mustFail(t, "entry duplicated over the last", withEntries(dup), entriesFile, checkpointsDir, "entry ")
	noNL := a.clone()
	noNL.files[entriesFile] = bytes.TrimSuffix(noNL.files[entriesFile], []byte("\n"))
	mustFail(t, "no final newline", noNL, entriesFile)
}

func removeName(names []string, n string) []string {
	var out []string
	for _, x := range names {
		if x != n {
			out = append(out, x)
		}
	}
	return out
}

// badEntry logs one entry made by make, and checks that an export fails
// verification naming that entry.
func badEntry(t *testing.T, name string, extra []*certs.Certificate, make func(f *fixture, of uint64) Entry) {
	t.Helper()
	f := newFixture(t)
	start := f.now
	f.addExchange(0)
	f.sync()
	idx := f.append(make(f, 0))
	f.sync()
	ec := f.exportCerts()
	ec.Certificates = append(ec.Certificates, extra...)
	var buf bytes.Buffer
	if err := f.log.Export(f.ctx, &buf, start, f.now, ec); err != nil {
		t.Fatalf("%s: export: %v", name, err)
	}
	_, err := verify(t, buf.Bytes(), nil)
	var ve *VerifyError
	if !errors.As(err, &ve) || !ve.IsEntry || ve.Index != idx {
		t.Errorf("%s: error %v, want one naming entry %d", name, err, idx)
	}
}

func TestEntryChecksFail(t *testing.T) {
	record := []byte(`{"caseId":"NH00000000"}`) // what addExchange(0) delivers
	uri := "https://liwan.example/cases"
	delivered := func(d, a Signed) Entry {
		return &DeliveredEntry{Header: Header{Time: time.Now()}, Exchange: fmt.Sprintf("01JD%022d", 0), To: liwan, Delivery: d, Ack: a, Of: 0}
	}
	badEntry(t, "delivery digest not the translated one", nil, func(f *fixture, of uint64) Entry {
		return delivered(deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, []byte("other"), []byte("{}"), f.now, "200"))
	})
	badEntry(t, "ack status 202", nil, func(f *fixture, of uint64) Entry {
		return delivered(deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "202"))
	})
	badEntry(t, "ack by the wrong partner", nil, func(f *fixture, of uint64) Entry {
		return delivered(deliveryAndAck(t, f.pki.Gateway, f.pki.Nanhai, uri, record, []byte("{}"), f.now, "200"))
	})
	badEntry(t, "ack bound to another request", nil, func(f *fixture, of uint64) Entry {
		d, _ := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "200")
		_, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri+"?x", record, []byte("{}"), f.now, "200")
		return delivered(d, a)
	})
	badEntry(t, "signature over another base", nil, func(f *fixture, of uint64) Entry {
		d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "200")
		d2, _ := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "200")
		d.Signature = d2.Signature
		return delivered(d, a)
	})
	badEntry(t, "content-digest not the digest", nil, func(f *fixture, of uint64) Entry {
		d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "200")
		a.Digest = certs.SM3Hex([]byte("something else"))
		return delivered(d, a)
	})
	badEntry(t, "of a later entry", nil, func(f *fixture, of uint64) Entry {
		d, a := deliveryAndAck(t, f.pki.Gateway, f.pki.Liwan, uri, record, []byte("{}"), f.now, "200")
		e := delivered(d, a).(*DeliveredEntry)
		e.Of = 99
		return e
	})
	badEntry(t, "request by the other district", nil, func(f *fixture, of uint64) Entry {
		body := []byte("<x/>")
		return &ExchangeEntry{Header: Header{Time: f.now}, Exchange: "e2", From: nanhai, To: liwan, Item: "i", SourceCase: "c",
			PolicyInput: policyInput, Decision: decision, Request: request(t, f.pki.Liwan, "/v1/exchanges", "application/xml", body, f.now),
			Translated: Digest{certs.SM3Hex(body)}}
	})
	badEntry(t, "policy activated by another key", nil, func(f *fixture, of uint64) Entry {
		return &PolicyActivatedEntry{Header: Header{Time: f.now}, Revision: strings.Repeat("01", 32), By: f.pki.Gateway.KeyID(),
			Request: request(t, f.pki.Admin, "/admin/v1/policy/drafts/1/activate", "application/json", nil, f.now)}
	})
	badEntry(t, "key rotation with a wrong key id", nil, func(f *fixture, of uint64) Entry {
		return &KeyRotatedEntry{Header: Header{Time: f.now}, Role: RoleLog, OldKeyID: f.pki.Log.KeyID(), NewKeyID: f.pki.Admin.KeyID(),
			NewCertificate: base64.StdEncoding.EncodeToString(f.pki.Log.Certificate().Raw)}
	})
	pki := devPKI(t)
	expired, err := pki.IssueLeaf(certs.Identity{Role: certs.RolePartner, Partner: "nanhai", Division: nanhai}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	badEntry(t, "request by an expired certificate", []*certs.Certificate{expired.Certificate()}, func(f *fixture, of uint64) Entry {
		body := []byte("<x/>")
		return &ExchangeEntry{Header: Header{Time: f.now}, Exchange: "e3", From: nanhai, To: liwan, Item: "i", SourceCase: "c",
			PolicyInput: policyInput, Decision: decision, Request: request(t, expired, "/v1/exchanges", "application/xml", body, f.now),
			Translated: Digest{certs.SM3Hex(body)}}
	})
}

func TestExportNeedsEveryCertificate(t *testing.T) {
	f := newFixture(t)
	start := f.now
	f.build(2, 1)
	var buf bytes.Buffer
	ec := f.exportCerts()
	ec.Certificates = nil
	if err := f.log.Export(f.ctx, &buf, start, f.now, ec); !errors.Is(err, ErrMissingCertificate) {
		t.Errorf("export without partner certificates: %v", err)
	}
}

func TestEvidenceBundle(t *testing.T) {
	f := newFixture(t)
	ids := f.build(10, 3)
	id := ids[7] // has a status, a dead delivery, a re-drive and a refusal
	f.addStatus(id, 7)
	var buf bytes.Buffer
	if err := f.log.Evidence(f.ctx, &buf, id, f.exportCerts()); err != nil { // syncs: the status is covered
		t.Fatal(err)
	}
	s, err := verify(t, buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + s.String())
	es, _ := f.store.EntriesOfExchange(f.ctx, id)
	if s.Kind != "evidence" || s.Exchange != id || s.Entries != len(es) || s.Skipped != 0 || s.Checkpoints != 1 {
		t.Errorf("summary %+v, %d entries", s, len(es))
	}
	a := openArchive(t, buf.Bytes())
	// Each proof verifies with transparency-dev against the checkpoint.
	cpName := a.namesWith(checkpointsDir)[0]
	cp, _, err := OpenCheckpoint(a.files[cpName], DefaultOrigin, []*certs.Certificate{f.pki.Log.Certificate()})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(a.files[entriesFile], []byte("\n")), []byte("\n")) {
		var el EvidenceLine
		if err := json.Unmarshal(line, &el); err != nil {
			t.Fatal(err)
		}
		var p InclusionProof
		if err := json.Unmarshal(a.files[proofName(el.Index)], &p); err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(Hasher, p.Index, p.Size, Hasher.HashLeaf([]byte(el.Entry)), p.Hashes, cp.Root[:]); err != nil {
			t.Errorf("entry %d: %v", el.Index, err)
		}
	}
	// Forgeries.
	c := a.clone()
	c.files[entriesFile] = bytes.Replace(c.files[entriesFile], []byte(`ACCEPTED`), []byte(`REJECTED`), 1)
	mustFail(t, "entry changed", c, entriesFile, "entry ")
	pn := a.namesWith(proofsDir)[0]
	c = a.clone()
	c.files[pn] = bytes.Replace(c.files[pn], []byte(`"hashes":["`), []byte(`"hashes":["A`), 1)
	mustFail(t, "proof changed", c, pn)
	c = a.clone()
	delete(c.files, pn)
	c.names = removeName(c.names, pn)
	mustFail(t, "proof removed", c, pn)
	c = a.clone()
	mm := c.manifest(t)
	mm["exchange"] = ids[1]
	c.setManifest(t, mm)
	mustFail(t, "other exchange", c, "entry ")

	var sink bytes.Buffer
	if err := f.log.Evidence(f.ctx, &sink, "no-such-exchange", f.exportCerts()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown exchange: %v", err)
	}
	// Entries not yet covered, on a replica that may not sign.
	f2, err := Open(f.ctx, f.store, NewOptions().WithLeader(func() bool { return false }).WithLogCertificates(f.pki.Log.Certificate()))
	if err != nil {
		t.Fatal(err)
	}
	f.addStatus(id, 8)
	if err := f2.Evidence(f.ctx, &sink, id, f.exportCerts()); !errors.Is(err, ErrNotCheckpointed) {
		t.Errorf("uncovered entries: %v", err)
	}
}
