// Package fixturetest reads the samples of shared/fixtures (and the copy
// committed in gateway/testdata/fixtures) and compares a translated record
// with what a sample's expect.json says the owning district receives. It
// serves the tests of adapters, gateway and cmd/tongban, which check the
// same samples through the codecs, over HTTP and on the command line.
package fixturetest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Expectation is a sample's expect.json (shared/fixtures/README.md).
type Expectation struct {
	From   string `json:"from"`
	Kind   string `json:"kind"`
	CaseNo string `json:"case_no"`
	Setup  *struct {
		Fixture   string `json:"fixture"`
		AckCaseNo string `json:"ack_case_no"`
	} `json:"setup"`
	Result          string          `json:"result"`
	Fields          []string        `json:"fields"`
	Decision        Decision        `json:"decision"`
	DeliveredLiwan  json.RawMessage `json:"delivered_liwan"`
	DeliveredNanhai json.RawMessage `json:"delivered_nanhai"`
}

// Decision is the policy decision an expect.json names.
type Decision struct {
	Allow            bool     `json:"allow"`
	Reasons          []string `json:"reasons"`
	MissingMaterials []string `json:"missing_materials"`
	Mode             string   `json:"mode"`
	TargetImplCode   string   `json:"target_impl_code"`
	PromisedDays     int      `json:"promised_days"`
}

// Sample is one folder of samples: its expect.json and the record the
// sender sends (KIND.xml from Nanhai, KIND.json from Liwan).
type Sample struct {
	Name  string
	Dir   string
	File  string // the record's path
	Exp   Expectation
	Input []byte // the record's bytes
}

// Load reads every sample below roots by folder name; a sample of a later
// root overrides one of the same name in an earlier root, and a root that
// does not exist is passed over. It fails tb when no sample is found.
func Load(tb testing.TB, roots ...string) map[string]*Sample {
	tb.Helper()
	out := map[string]*Sample{}
	for _, root := range roots {
		des, err := os.ReadDir(root)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		for _, de := range des {
			if !de.IsDir() {
				continue
			}
			s := &Sample{Name: de.Name(), Dir: filepath.Join(root, de.Name())}
			b, err := os.ReadFile(filepath.Join(s.Dir, "expect.json"))
			if err != nil {
				tb.Fatal(err)
			}
			if err := json.Unmarshal(b, &s.Exp); err != nil {
				tb.Fatalf("%s: %v", s.Dir, err)
			}
			ext := map[string]string{"nanhai": ".xml", "liwan": ".json"}[s.Exp.From]
			s.File = filepath.Join(s.Dir, s.Exp.Kind+ext)
			if s.Input, err = os.ReadFile(s.File); err != nil {
				tb.Fatal(err)
			}
			out[s.Name] = s
		}
	}
	if len(out) == 0 {
		tb.Fatalf("no samples in %q", roots)
	}
	return out
}

// CheckDelivered compares a translated record, delivered to the district
// that did not send the sample, with expect.json's delivered_liwan (JSON,
// times as instants) or delivered_nanhai (element → text of the GBK XML).
// An expectation naming the sender's own district, or naming neither,
// fails tb.
func CheckDelivered(tb testing.TB, exp Expectation, record []byte) {
	tb.Helper()
	if exp.DeliveredLiwan == nil && exp.DeliveredNanhai == nil {
		tb.Fatal("an accepted sample without delivered_liwan or delivered_nanhai")
	}
	if exp.DeliveredLiwan != nil {
		if exp.From != "nanhai" {
			tb.Fatal("delivered_liwan for a record not delivered to Liwan")
		}
		var got, want any
		if err := json.Unmarshal(record, &got); err != nil {
			tb.Fatalf("delivered record: %v\n%s", err, record)
		}
		if err := json.Unmarshal(exp.DeliveredLiwan, &want); err != nil {
			tb.Fatalf("delivered_liwan: %v", err)
		}
		if !JSONEqual(got, want) {
			tb.Errorf("delivered to Liwan:\n%s\nwant\n%s", record, exp.DeliveredLiwan)
		}
	}
	if exp.DeliveredNanhai != nil {
		if exp.From != "liwan" {
			tb.Fatal("delivered_nanhai for a record not delivered to Nanhai")
		}
		var want map[string]any
		if err := json.Unmarshal(exp.DeliveredNanhai, &want); err != nil {
			tb.Fatalf("delivered_nanhai: %v", err)
		}
		if got := NanhaiElements(tb, record); !reflect.DeepEqual(got, want) {
			tb.Errorf("delivered to Nanhai:\n%v\nwant\n%v", got, want)
		}
	}
}

// JSONEqual compares decoded JSON values; strings that are both RFC 3339
// times compare as instants.
func JSONEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !JSONEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !JSONEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		tx, ex := time.Parse(time.RFC3339, x)
		ty, ey := time.Parse(time.RFC3339, y)
		if ex == nil && ey == nil {
			return tx.Equal(ty)
		}
		return x == y
	}
	return reflect.DeepEqual(a, b)
}

// xmlElem is a generic element, read without the codec under test.
type xmlElem struct {
	XMLName  xml.Name
	Text     string    `xml:",chardata"`
	Children []xmlElem `xml:",any"`
}

// NanhaiElements reads a GBK Nanhai document (its declaration required)
// into element → text, MATERIALS as a list of element → text, as
// delivered_nanhai is written; it reads it without the codec under test
// and keeps every text as it stands.
func NanhaiElements(tb testing.TB, doc []byte) map[string]any {
	tb.Helper()
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="GBK"?>`)) {
		tb.Errorf("no GBK declaration: %.60q", doc)
	}
	utf, err := simplifiedchinese.GBK.NewDecoder().Bytes(doc)
	if err != nil {
		tb.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(utf))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root xmlElem
	if err := d.Decode(&root); err != nil {
		tb.Fatal(err)
	}
	out := map[string]any{}
	for _, c := range root.Children {
		if c.XMLName.Local == "MATERIALS" {
			list := []any{}
			for _, m := range c.Children {
				mm := map[string]any{}
				for _, f := range m.Children {
					mm[f.XMLName.Local] = f.Text
				}
				list = append(list, mm)
			}
			out["MATERIALS"] = list
			continue
		}
		out[c.XMLName.Local] = c.Text
	}
	return out
}
