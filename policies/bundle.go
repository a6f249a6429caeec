package policies

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// ManifestPath is the path of the optional bundle manifest.
const ManifestPath = ".manifest"

// Root is the directory, relative to the bundle root, that holds every
// policy file of a bundle besides the manifest.
const Root = "tongban"

// CatalogPath is where the item catalog lives in a bundle; OPA loads it as
// data.tongban.catalog.
const CatalogPath = "tongban/catalog/data.json"

// Errors of bundle construction.
var (
	// ErrBadBundle reports a bundle that cannot be taken: a path outside the
	// bundle, an absolute path, traversal, a non-regular file, a duplicate.
	ErrBadBundle = errors.New("policies: bad bundle")
	// ErrTooLarge reports an uploaded bundle larger than allowed.
	ErrTooLarge = errors.New("policies: bundle too large")
)

//go:embed .manifest all:tongban
var pilotFS embed.FS

// Bundle is an immutable set of policy files: the optional .manifest and
// everything under tongban/, keyed by path relative to the bundle root with
// '/' separators.
type Bundle struct {
	files    map[string][]byte
	paths    []string // sorted bytewise
	revision string
}

// Pilot returns the pilot bundle embedded in the binary.
func Pilot() *Bundle {
	files := map[string][]byte{}
	err := fs.WalkDir(pilotFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := pilotFS.ReadFile(p)
		files[p] = b
		return err
	})
	if err != nil {
		panic("policies: reading embedded pilot bundle: " + err.Error())
	}
	b, err := BundleFromFiles(files)
	if err != nil {
		panic("policies: embedded pilot bundle: " + err.Error())
	}
	return b
}

// LoadBundle reads the bundle whose root is dir (like "policies/"): the
// optional dir/.manifest and every file under dir/tongban/. Other files in
// dir (Go code, schemas, test data) are not part of the bundle. Symbolic
// links and other non-regular files under tongban/ are refused.
func LoadBundle(dir string) (*Bundle, error) {
	files := map[string][]byte{}
	manifest, err := os.ReadFile(filepath.Join(dir, ManifestPath))
	switch {
	case err == nil:
		files[ManifestPath] = manifest
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("policies: reading manifest: %w", err)
	}
	root := filepath.Join(dir, Root)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", ErrBadBundle, rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policies: loading bundle %s: %w", dir, err)
	}
	return BundleFromFiles(files)
}

// BundleFromFiles makes a bundle of files keyed by path relative to the
// bundle root. Every path must be .manifest or lie under tongban/, be
// relative, '/'-separated and free of "." and ".." elements. The map and its
// contents are copied.
func BundleFromFiles(files map[string][]byte) (*Bundle, error) {
	b := &Bundle{files: make(map[string][]byte, len(files))}
	for p, content := range files {
		if err := checkPath(p); err != nil {
			return nil, err
		}
		b.files[p] = bytes.Clone(content)
		b.paths = append(b.paths, p)
	}
	slices.Sort(b.paths)
	b.revision = revision(b.paths, b.files)
	return b, nil
}

func checkPath(p string) error {
	switch {
	case p == ManifestPath:
		return nil
	case strings.ContainsRune(p, '\\') || strings.ContainsRune(p, 0):
		return fmt.Errorf("%w: invalid path %q", ErrBadBundle, p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: absolute path %q", ErrBadBundle, p)
	case !fs.ValidPath(p):
		return fmt.Errorf("%w: invalid path %q", ErrBadBundle, p)
	case !strings.HasPrefix(p, Root+"/"):
		return fmt.Errorf("%w: %q is outside %s/", ErrBadBundle, p, Root)
	}
	return nil
}

// BundleFromTar reads a bundle from a tar archive (gzip-compressed or not),
// as an administrator uploads a draft. Entry names may start with "./";
// directories are skipped. It refuses absolute paths, traversal, links and
// other non-regular entries, files outside tongban/ other than .manifest,
// duplicates, and more than maxBytes of file content in total (ErrTooLarge).
func BundleFromTar(r io.Reader, maxBytes int64) (*Bundle, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadBundle, err)
		}
		defer zr.Close()
		src = zr
	}
	tr := tar.NewReader(src)
	files := map[string][]byte{}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadBundle, err)
		}
		name := h.Name
		if strings.HasPrefix(name, "/") {
			return nil, fmt.Errorf("%w: absolute path %q", ErrBadBundle, name)
		}
		for strings.HasPrefix(name, "./") {
			name = name[2:]
		}
		switch h.Typeflag {
		case tar.TypeDir:
			dir := strings.TrimSuffix(name, "/")
			if dir == "" || dir == "." || dir == Root {
				continue
			}
			if err := checkPath(dir); err != nil || dir == ManifestPath {
				return nil, fmt.Errorf("%w: directory %q is outside %s/", ErrBadBundle, h.Name, Root)
			}
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%w: %q is not a regular file", ErrBadBundle, h.Name)
		}
		if err := checkPath(name); err != nil {
			return nil, err
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("%w: duplicate entry %q", ErrBadBundle, name)
		}
		if h.Size < 0 || h.Size > maxBytes-total {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
		}
		content, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadBundle, err)
		}
		total += int64(len(content))
		files[name] = content
	}
	return BundleFromFiles(files)
}

// Files returns a copy of the bundle's files.
func (b *Bundle) Files() map[string][]byte {
	out := make(map[string][]byte, len(b.files))
	for p, c := range b.files {
		out[p] = bytes.Clone(c)
	}
	return out
}

// Paths returns the bundle's paths, sorted bytewise.
func (b *Bundle) Paths() []string { return slices.Clone(b.paths) }

// File returns a copy of one file of the bundle.
func (b *Bundle) File(p string) ([]byte, bool) {
	c, ok := b.files[p]
	return bytes.Clone(c), ok
}

// Revision is the lowercase hex SM3 over the bundle's files sorted bytewise
// by path, each contributing path ‖ 0x00 ‖ uint64 big-endian length ‖ bytes
// (contracts/catalog.md).
func (b *Bundle) Revision() string { return b.revision }

func revision(paths []string, files map[string][]byte) string {
	h := sm3.New()
	var n [8]byte
	for _, p := range paths {
		c := files[p]
		h.Write([]byte(p))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(len(c)))
		h.Write(n[:])
		h.Write(c)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Tar writes the bundle as an uncompressed tar archive, entries in path
// order with fixed metadata, so the same bundle always gives the same bytes.
// BundleFromTar reads it back.
func (b *Bundle) Tar() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	for _, p := range b.paths {
		c := b.files[p]
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     p,
			Size:     int64(len(c)),
			Mode:     0o644,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			panic("policies: writing tar to memory: " + err.Error())
		}
		tw.Write(c)
	}
	tw.Close()
	return buf.Bytes()
}

// isDataFile reports whether p is loaded as data, as OPA does in bundle
// mode: files named data.json (or data.yaml / data.yml).
func isDataFile(p string) bool {
	switch path.Base(p) {
	case "data.json", "data.yaml", "data.yml":
		return true
	}
	return false
}
