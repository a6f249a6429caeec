package policies

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRevisionFormula computes the contract's revision with the openssl CLI
// over a concatenation built here, for a bundle whose bytewise path order
// differs from a naive one ('-' < '/' < 'Z' < 'a').
func TestRevisionFormula(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	files := map[string][]byte{
		".manifest":                 []byte(`{"roots":["tongban"]}`),
		"tongban/a/b.rego":          []byte("package tongban.a\n"),
		"tongban/a-b.rego":          []byte("package tongban.ab\n"),
		"tongban/Z.rego":            []byte("package tongban.z\n"),
		"tongban/catalog/data.json": []byte(`{"items":{}}` + "\n"),
		"tongban/empty.txt":         {},
		"tongban/中文.json":           []byte("{}"),
	}
	b, err := BundleFromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{".manifest", "tongban/Z.rego", "tongban/a-b.rego", "tongban/a/b.rego", "tongban/catalog/data.json", "tongban/empty.txt", "tongban/中文.json"}
	if !slices.Equal(b.Paths(), order) {
		t.Fatalf("paths %q, want %q", b.Paths(), order)
	}
	var buf bytes.Buffer
	for _, p := range order {
		c := files[p]
		buf.WriteString(p)
		buf.WriteByte(0)
		n := uint64(len(c))
		for shift := 56; shift >= 0; shift -= 8 {
			buf.WriteByte(byte(n >> shift))
		}
		buf.Write(c)
	}
	f := filepath.Join(t.TempDir(), "concat")
	if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "dgst", "-sm3", "-r", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[0]
	if b.Revision() != want {
		t.Errorf("revision %s, openssl says %s", b.Revision(), want)
	}
	if len(want) != 64 || strings.ToLower(want) != want {
		t.Errorf("revision %q is not lowercase hex SM3", want)
	}
	files["tongban/empty.txt"] = []byte{0}
	if c, _ := BundleFromFiles(files); c.Revision() == b.Revision() {
		t.Error("changing a file did not change the revision")
	}
}

// TestPilotIsTheDirectory checks that the embedded pilot is exactly the
// bundle on disk, and that nothing but .manifest and tongban/ is in it.
func TestPilotIsTheDirectory(t *testing.T) {
	disk, err := LoadBundle(".")
	if err != nil {
		t.Fatal(err)
	}
	p := Pilot()
	if disk.Revision() != p.Revision() || !slices.Equal(disk.Paths(), p.Paths()) {
		t.Errorf("embedded %s %q, on disk %s %q", p.Revision(), p.Paths(), disk.Revision(), disk.Paths())
	}
	for _, path := range p.Paths() {
		if path != ManifestPath && !strings.HasPrefix(path, "tongban/") {
			t.Errorf("%s is in the bundle", path)
		}
	}
	for _, want := range []string{ManifestPath, CatalogPath, "tongban/crossdistrict.rego", "tongban/crossdistrict_test.rego"} {
		if _, ok := p.File(want); !ok {
			t.Errorf("%s missing from the pilot bundle", want)
		}
	}
}

func TestBundleIsImmutable(t *testing.T) {
	b := Pilot()
	rev := b.Revision()
	files := b.Files()
	files[CatalogPath][0] = 'X'
	delete(files, ManifestPath)
	paths := b.Paths()
	paths[0] = "x"
	if c, _ := b.File(CatalogPath); c[0] == 'X' {
		t.Error("Files shares its bytes with the bundle")
	}
	if _, ok := b.File(ManifestPath); !ok || b.Paths()[0] != ManifestPath {
		t.Error("Files or Paths share their maps with the bundle")
	}
	again, _ := BundleFromFiles(b.Files())
	if again.Revision() != rev {
		t.Error("revision changed")
	}
}

func TestBundleFromFilesRefuses(t *testing.T) {
	for _, p := range []string{"", "/tongban/a.rego", "tongban", "tongban/", "tongban/../x", "tongban/./a", "tongban//a",
		"other/a.rego", "a.rego", "data.json", `tongban\a.rego`, "tongban/a\x00", "./tongban/a.rego", "..", "TONGBAN/a", ".manifest/x"} {
		if _, err := BundleFromFiles(map[string][]byte{p: nil}); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%q: err %v, want ErrBadBundle", p, err)
		}
	}
}

func TestLoadBundleRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tongban"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(dir, "tongban", "link.rego")); err != nil {
		t.Skip(err)
	}
	if _, err := LoadBundle(dir); !errors.Is(err, ErrBadBundle) {
		t.Errorf("err %v, want ErrBadBundle", err)
	}
	if _, err := LoadBundle(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a directory without tongban/ loaded")
	}
}

func TestTarRoundTrip(t *testing.T) {
	p := Pilot()
	tb := p.Tar()
	if !bytes.Equal(tb, p.Tar()) {
		t.Error("Tar is not deterministic")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb)
	zw.Close()
	for name, data := range map[string][]byte{"tar": tb, "tar.gz": gz.Bytes()} {
		b, err := BundleFromTar(bytes.NewReader(data), 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b.Revision() != p.Revision() || !maps.EqualFunc(b.Files(), p.Files(), bytes.Equal) {
			t.Errorf("%s: round trip changed the bundle", name)
		}
	}
	if _, err := BundleFromTar(bytes.NewReader(tb), int64(len(p.files[CatalogPath]))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
}

type entry struct {
	name     string
	typeflag byte
	body     string
	link     string
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typeflag, Size: int64(len(e.body)), Mode: 0o644, Linkname: e.link}
		if e.typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body[:h.Size]))
	}
	tw.Close()
	return buf.Bytes()
}

func TestBundleFromTar(t *testing.T) {
	ok := tarOf(t,
		entry{name: "./", typeflag: tar.TypeDir},
		entry{name: "./.manifest", typeflag: tar.TypeReg, body: "{}"},
		entry{name: "./tongban/", typeflag: tar.TypeDir},
		entry{name: "./tongban/catalog/", typeflag: tar.TypeDir},
		entry{name: "./tongban/catalog/data.json", typeflag: tar.TypeReg, body: "{}"},
		entry{name: "tongban/x.rego", typeflag: tar.TypeReg, body: "package tongban.x\n"},
	)
	b, err := BundleFromTar(bytes.NewReader(ok), 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{".manifest", "tongban/catalog/data.json", "tongban/x.rego"}; !slices.Equal(b.Paths(), want) {
		t.Errorf("paths %q, want %q", b.Paths(), want)
	}
	refused := map[string][]byte{
		"absolute":         tarOf(t, entry{name: "/tongban/a.rego", typeflag: tar.TypeReg, body: "x"}),
		"traversal":        tarOf(t, entry{name: "tongban/../../etc/passwd", typeflag: tar.TypeReg, body: "x"}),
		"dotdot":           tarOf(t, entry{name: "../tongban/a.rego", typeflag: tar.TypeReg, body: "x"}),
		"outside":          tarOf(t, entry{name: "main.go", typeflag: tar.TypeReg, body: "x"}),
		"outside dir":      tarOf(t, entry{name: "other/", typeflag: tar.TypeDir}),
		"symlink":          tarOf(t, entry{name: "tongban/a.rego", typeflag: tar.TypeSymlink, link: "/etc/passwd"}),
		"hard link":        tarOf(t, entry{name: "tongban/a.rego", typeflag: tar.TypeLink, link: "tongban/b.rego"}),
		"device":           tarOf(t, entry{name: "tongban/dev", typeflag: tar.TypeChar}),
		"fifo":             tarOf(t, entry{name: "tongban/fifo", typeflag: tar.TypeFifo}),
		"duplicate":        tarOf(t, entry{name: "tongban/a.rego", typeflag: tar.TypeReg, body: "x"}, entry{name: "./tongban/a.rego", typeflag: tar.TypeReg, body: "y"}),
		"not a tar":        []byte("this is not a tar archive, not at all, it is too short but has some bytes"),
		"truncated gzip":   {0x1f, 0x8b, 8, 0},
		"truncated member": tarOf(t, entry{name: "tongban/a.rego", typeflag: tar.TypeReg, body: "package tongban.a\n"})[:517],
	}
	for name, data := range refused {
		if _, err := BundleFromTar(bytes.NewReader(data), 1<<20); !errors.Is(err, ErrBadBundle) {
			t.Errorf("%s: err %v, want ErrBadBundle", name, err)
		}
	}
	big := tarOf(t, entry{name: "tongban/a.rego", typeflag: tar.TypeReg, body: "1234567890"}, entry{name: "tongban/b.rego", typeflag: tar.TypeReg, body: "1234567890"})
	if _, err := BundleFromTar(bytes.NewReader(big), 19); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err %v, want ErrTooLarge", err)
	}
	if _, err := BundleFromTar(bytes.NewReader(big), 20); err != nil {
		t.Errorf("exactly the limit: %v", err)
	}
}
