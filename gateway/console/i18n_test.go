package console

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// keyUse finds message keys in templates ({{.T "key"}}, {{$.T "key" …}},
// {{$v.T "key"}}) and in Go code (view titles, flashes, error pages).
var (
	templateKey = regexp.MustCompile(`\.T "([a-zA-Z0-9_.]+)"`)
	goKey       = regexp.MustCompile(`"((?:ex|xc|dn|le|log|pol|dr|dl|cat|flash|error|login|nav|role|state|ev)\.[a-zA-Z0-9_.]+)"`)
)

func TestEveryMessageKeyExists(t *testing.T) {
	used := map[string]string{}
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		for _, m := range templateKey.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = path
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	gos, _ := filepath.Glob("*.go")
	for _, f := range gos {
		if strings.HasSuffix(f, "_test.go") || f == "i18n.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goKey.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = f
		}
	}
	if len(used) < 100 {
		t.Fatalf("found only %d keys: the scan is broken", len(used))
	}
	for key, where := range used {
		if !hasMessage(key) {
			t.Errorf("%s uses %q, which has no message", where, key)
		}
	}
}

func TestEveryMessageHasBothLanguages(t *testing.T) {
	verbs := regexp.MustCompile(`%[a-z]`)
	for key, m := range messages {
		if strings.TrimSpace(m[0]) == "" || strings.TrimSpace(m[1]) == "" {
			t.Errorf("%s: missing a language: %q", key, m)
		}
		if a, b := verbs.FindAllString(m[0], -1), verbs.FindAllString(m[1], -1); strings.Join(a, "") != strings.Join(b, "") {
			t.Errorf("%s: verbs differ: %v vs %v", key, a, b)
		}
	}
	if got := translate("en", "xc.days", 5); got != "5 working days" {
		t.Errorf("translate: %q", got)
	}
	if got := translate("zh", "no.such.key"); got != "no.such.key" {
		t.Errorf("unknown key: %q", got)
	}
}
