package console

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeBack: whatever the language switch is given, it sends the
// browser only to a console path on this host.
func FuzzSafeBack(f *testing.F) {
	for _, s := range []string{"/console/log", "//evil/", "https://x/console/", "/console/%2e%2e/admin", "/console/?a=//b", "\\\\evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, back string) {
		got := safeBack(back)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(u.Path, "/console/") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeBack(%q) = %q", back, got)
		}
	})
}
