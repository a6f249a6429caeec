package policies

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzBundleFromTar feeds arbitrary uploads to BundleFromTar: it must not
// panic, must only accept bundle paths, and what it accepts must survive a
// Tar round trip unchanged.
func FuzzBundleFromTar(f *testing.F) {
	f.Add(Pilot().Tar())
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := BundleFromTar(bytes.NewReader(data), 1<<16)
		if err != nil {
			return
		}
		for _, p := range b.Paths() {
			if p != ManifestPath && !strings.HasPrefix(p, "tongban/") || strings.Contains(p, "..") {
				t.Fatalf("accepted path %q", p)
			}
		}
		again, err := BundleFromTar(bytes.NewReader(b.Tar()), 1<<16)
		if err != nil || again.Revision() != b.Revision() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
