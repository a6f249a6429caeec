package exchangelog

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// contractFields is exchange-log.md's table, written out independently of
// fieldSets: the keys of each kind's entry, in the order Marshal writes
// them. Optional keys are marked with a trailing "?".
var contractFields = map[string][]string{
	KindExchange:         {"v", "kind", "time", "exchange", "from", "to", "item", "source_case", "policy_input", "decision", "request", "translated"},
	KindDenied:           {"v", "kind", "time", "exchange?", "from", "request", "code", "fields?", "policy_input?", "decision?"},
	KindStatus:           {"v", "kind", "time", "exchange", "from", "to", "state", "request", "translated"},
	KindDelivered:        {"v", "kind", "time", "exchange", "to", "delivery", "ack", "partner_case?", "of"},
	KindRefusedByPartner: {"v", "kind", "time", "exchange", "to", "delivery", "ack", "partner_case?", "of", "reason"},
	KindDead:             {"v", "kind", "time", "exchange", "to", "of", "attempts", "last_error"},
	KindRedriven:         {"v", "kind", "time", "exchange", "of", "by"},
	KindPolicyActivated:  {"v", "kind", "time", "revision", "previous", "by", "request"},
	KindKeyRotated:       {"v", "kind", "time", "role", "old_keyid", "new_keyid", "new_certificate"},
}

// keysInOrder returns the top-level keys of a JSON object in order.
func keysInOrder(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestEntriesHaveExactlyTheContractFields(t *testing.T) {
	f := newFixture(t)
	f.build(8, 100) // every kind, via addOthers at i == 7
	es, err := f.store.Entries(f.ctx, 0, uint64(len(f.store.entries)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		if bytes.ContainsAny(e.Bytes, "\n") {
			t.Fatalf("entry %d has a newline", e.Index)
		}
		keys := keysInOrder(t, e.Bytes)
		var kind string
		var hdr struct {
			V    int    `json:"v"`
			Kind string `json:"kind"`
			Time string `json:"time"`
		}
		if err := json.Unmarshal(e.Bytes, &hdr); err != nil {
			t.Fatal(err)
		}
		kind = hdr.Kind
		seen[kind] = true
		if hdr.V != 1 || !strings.HasSuffix(hdr.Time, "+08:00") {
			t.Errorf("entry %d: v %d time %q", e.Index, hdr.V, hdr.Time)
		}
		if _, err := time.Parse(time.RFC3339, hdr.Time); err != nil {
			t.Errorf("entry %d: time %q: %v", e.Index, hdr.Time, err)
		}
		// keys must be the contract's keys, in its order, optional ones may be absent.
		want := contractFields[kind]
		j := 0
		for _, k := range keys {
			for j < len(want) && strings.TrimSuffix(want[j], "?") != k {
				if !strings.HasSuffix(want[j], "?") {
					t.Fatalf("entry %d (%s): missing %q before %q in %v", e.Index, kind, want[j], k, keys)
				}
				j++
			}
			if j == len(want) {
				t.Fatalf("entry %d (%s): unexpected or misplaced key %q in %v", e.Index, kind, k, keys)
			}
			j++
		}
		for ; j < len(want); j++ {
			if !strings.HasSuffix(want[j], "?") {
				t.Fatalf("entry %d (%s): missing %q", e.Index, kind, want[j])
			}
		}
		// denied: fields only with validation_failed, policy objects only with policy_denied.
		if kind == KindDenied {
			var d map[string]json.RawMessage
			_ = json.Unmarshal(e.Bytes, &d)
			var code string
			_ = json.Unmarshal(d["code"], &code)
			_, hasFields := d["fields"]
			_, hasDecision := d["decision"]
			if hasFields != (code == "validation_failed") || hasDecision != (code == "policy_denied") {
				t.Errorf("denied %s: fields %v decision %v", code, hasFields, hasDecision)
			}
		}
		// Round trip: parsing and marshalling again gives the same bytes.
		p, err := ParseEntry(e.Bytes)
		if err != nil {
			t.Fatalf("entry %d: %v", e.Index, err)
		}
		again, err := Marshal(p)
		if err != nil || !bytes.Equal(again, e.Bytes) {
			t.Fatalf("entry %d: re-marshal differs (%v):\n%s\n%s", e.Index, err, e.Bytes, again)
		}
	}
	for k := range contractFields {
		if !seen[k] {
			t.Errorf("kind %s not exercised", k)
		}
	}
}

func TestMarshalRefusesIncompleteEntries(t *testing.T) {
	f := newFixture(t)
	at := fixedTime
	req := request(t, f.pki.Nanhai, "/v1/exchanges", "application/xml", []byte("x"), at)
	cases := map[string]Entry{
		"zero time":                    &RedrivenEntry{Exchange: "x", By: f.pki.Admin.KeyID()},
		"exchange without item":        &ExchangeEntry{Header: Header{Time: at}, Exchange: "x", From: nanhai, To: liwan, SourceCase: "1", PolicyInput: policyInput, Decision: decision, Request: req, Translated: Digest{req.Digest}},
		"exchange decision not object": &ExchangeEntry{Header: Header{Time: at}, Exchange: "x", From: nanhai, To: liwan, Item: "i", SourceCase: "1", PolicyInput: policyInput, Decision: json.RawMessage(`[1]`), Request: req, Translated: Digest{req.Digest}},
		"validation without fields":    &DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: req, Code: "validation_failed"},
		"fields on malformed":          &DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: req, Code: "malformed", Fields: []string{"a"}},
		"policy_denied without input":  &DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: req, Code: "policy_denied"},
		"decision on conflict":         &DeniedEntry{Header: Header{Time: at}, From: nanhai, Request: req, Code: "duplicate_conflict", Decision: decision},
		"request digest not hex":       &StatusEntry{Header: Header{Time: at}, Exchange: "x", From: liwan, To: nanhai, State: "S", Request: Signed{Digest: "zz", SignatureBase: "b", Signature: "s", KeyID: req.KeyID}, Translated: Digest{req.Digest}},
		"bad role":                     &KeyRotatedEntry{Header: Header{Time: at}, Role: "ca", OldKeyID: req.KeyID, NewKeyID: req.KeyID, NewCertificate: "AA=="},
		"refused without reason":       &RefusedByPartnerEntry{Header: Header{Time: at}, Exchange: "x", To: liwan, Delivery: req, Ack: req},
	}
	for name, e := range cases {
		if _, err := Marshal(e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: Marshal error %v, want ErrInvalidEntry", name, err)
		}
	}
}

func TestParseEntryRefusesWrongFieldSets(t *testing.T) {
	good := []byte(`{"v":1,"kind":"redriven","time":"2026-11-27T09:45:00+08:00","exchange":"x","of":3,"by":"` + strings.Repeat("ab", 32) + `"}`)
	if _, err := ParseEntry(good); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"extra field":    `{"v":1,"kind":"redriven","time":"2026-11-27T09:45:00+08:00","exchange":"x","of":3,"by":"` + strings.Repeat("ab", 32) + `","name":"张三"}`,
		"missing of":     `{"v":1,"kind":"redriven","time":"2026-11-27T09:45:00+08:00","exchange":"x","by":"` + strings.Repeat("ab", 32) + `"}`,
		"v 2":            `{"v":2,"kind":"redriven","time":"2026-11-27T09:45:00+08:00","exchange":"x","of":3,"by":"` + strings.Repeat("ab", 32) + `"}`,
		"UTC time":       `{"v":1,"kind":"redriven","time":"2026-11-27T01:45:00Z","exchange":"x","of":3,"by":"` + strings.Repeat("ab", 32) + `"}`,
		"unknown kind":   `{"v":1,"kind":"deleted","time":"2026-11-27T09:45:00+08:00"}`,
		"trailing data":  string(good) + `{}`,
		"newline inside": strings.Replace(string(good), ",", ",\n", 1),
	}
	for name, b := range bad {
		if _, err := ParseEntry([]byte(b)); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if !slices.Contains(contractFields[KindRedriven], "of") {
		t.Fatal("table broken")
	}
}

// TestHasDecision: HasDecision is true exactly for the entries whose
// marshalled JSON has a top-level policy_input, over every kind the
// fixture logs (both denials among them).
func TestHasDecision(t *testing.T) {
	f := newFixture(t)
	f.build(8, 8)
	size, err := f.store.LogSize(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err := f.store.Entries(f.ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	with := 0
	for _, se := range es {
		e, err := ParseEntry(se.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(se.Bytes, &top); err != nil {
			t.Fatal(err)
		}
		_, want := top["policy_input"]
		if got := HasDecision(e); got != want {
			t.Errorf("entry %d (%s): HasDecision %v, policy_input present %v", se.Index, Kind(e), got, want)
		}
		kinds[Kind(e)] = true
		if want {
			with++
		}
	}
	if len(kinds) < 9 || with == 0 || with == len(es) {
		t.Fatalf("the fixture logged %d kinds, %d of %d entries with a decision", len(kinds), with, len(es))
	}
}

// TestCheckObject: only valid JSON objects pass.
func TestCheckObject(t *testing.T) {
	for raw, ok := range map[string]bool{
		`{}`: true, `{"a":1}`: true, " \n{\"a\":[1,{\"b\":null}]}\t": true,
		``: false, `null`: false, `[]`: false, `"{}"`: false, `1`: false, `{`: false,
		`{}x`: false, `{"a":}`: false, `{"a":1}{}`: false, ` `: false,
	} {
		if err := checkObject("x", json.RawMessage(raw)); (err == nil) != ok {
			t.Errorf("checkObject(%q) = %v, want ok %v", raw, err, ok)
		}
	}
}
