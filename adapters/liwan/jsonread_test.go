package liwan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// sameParse reports how parse and encoding/json on the body as it is
// (parseJSON without lifting) differ, "" when they agree.
func sameParse(body []byte) string {
	got, gotErr := parse(body)
	want, wantErr := parseAsIs(body)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("parse: %v, %v\nas is: %v, %v", got, gotErr, want, wantErr)
	}
	return ""
}

// parseAsIs is parse without lifting strings.
func parseAsIs(body []byte) (map[string]any, error) {
	if !utf8.Valid(body) {
		return parse(body) // refused before anything is parsed
	}
	return parseJSON(body, nil)
}

// TestLiftedStringsParseAsIs: parse (long strings lifted out and put back)
// gives exactly the values or the error encoding/json gives on the body as
// it is, wherever the strings stand.
func TestLiftedStringsParseAsIs(t *testing.T) {
	run := strings.Repeat("QUJD", 80) // 320 bytes of base64
	for _, tc := range []struct {
		name, body string
		lifts      int
		ok, fast   bool // parses; without parsing again
	}{
		{"content", `{"m":[{"content":"` + run + `"}]}`, 1, true, true},
		{"two", `{"a":"` + run + `","b":"` + run + run + `"}`, 2, true, true},
		{"key", `{"` + run + `":1}`, 1, true, true},
		{"duplicate keys", `{"` + run + `":1,"` + run + `":2}`, 2, false, false},
		{"empty beside", `{"a":"","b":"` + run + `","c":""}`, 1, true, true},
		{"short", `{"a":"` + run[:255] + `"}`, 0, true, false},
		{"after an escaped quote", `{"a":"\"` + run + `"}`, 1, true, false},
		{"in a longer string", `{"a":"x-` + run + `"}`, 0, true, false},
		{"unterminated", `{"a":"` + run + `"`, 1, false, false},
		{"after the top level", `{"a":1}"` + run + `"`, 1, false, false},
		{"top level string", `"` + run + `"`, 1, false, false},
		{"too deep", strings.Repeat("[", maxDepth+1) + `"` + run + `"` + strings.Repeat("]", maxDepth+1), 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			cut, runs := liftStrings(body)
			if len(runs) != tc.lifts {
				t.Fatalf("liftStrings found %d strings, want %d", len(runs), tc.lifts)
			}
			if diff := sameParse(body); diff != "" {
				t.Fatal(diff)
			}
			if _, err := parse(body); (err == nil) != tc.ok {
				t.Fatalf("parse: %v, want ok=%v", err, tc.ok)
			}
			if _, err := parseJSON(cut, runs); tc.fast && err != nil {
				t.Fatalf("lifted strings not put back: %v", err)
			}
		})
	}
}

// FuzzLiftedStrings: parse agrees with encoding/json on the body as it is.
func FuzzLiftedStrings(f *testing.F) {
	run := strings.Repeat("QUJD", 70)
	for _, s := range []string{
		`{"m":[{"content":"` + run + `"}]}`,
		`{"` + run + `":"` + run + `"}`,
		`{"a":"\"` + run + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if diff := sameParse(body); diff != "" {
			t.Fatal(diff)
		}
	})
}
