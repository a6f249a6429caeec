package exchangelog

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
	"github.com/transparency-dev/merkle/proof"
)

// ErrBundleInvalid is wrapped by every failure of [VerifyBundle].
var ErrBundleInvalid = errors.New("exchangelog: bundle does not verify")

// VerifyError names the first file or entry of a bundle that fails.
type VerifyError struct {
	File    string // the failing file ("" when an entry fails)
	Index   uint64 // the failing entry's log index, when IsEntry
	IsEntry bool
	Reason  string
}

func (e *VerifyError) Error() string {
	if e.IsEntry {
		return fmt.Sprintf("entry %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBundleInvalid) hold.
func (e *VerifyError) Unwrap() error { return ErrBundleInvalid }

func fileErr(name, format string, args ...any) error {
	return &VerifyError{File: name, Reason: fmt.Sprintf(format, args...)}
}

func entryErr(index uint64, format string, args ...any) error {
	return &VerifyError{Index: index, IsEntry: true, Reason: fmt.Sprintf(format, args...)}
}

// VerifyOptions configure [VerifyBundle]; build them with [NewVerifyOptions].
type VerifyOptions struct {
	logCerts []*certs.Certificate
}

// NewVerifyOptions returns the defaults: the bundle's own log certificates.
func NewVerifyOptions() *VerifyOptions { return &VerifyOptions{} }

// WithLogCertificates sets the log certificates the auditor was given out of
// band (`tongban audit verify --log-key CERT`): checkpoints must verify with
// one of these, and the bundle's log certificates are not trusted.
func (o *VerifyOptions) WithLogCertificates(cs ...*certs.Certificate) *VerifyOptions {
	o.logCerts = append(o.logCerts, cs...)
	return o
}

// Summary is what a verified bundle holds.
type Summary struct {
	Kind        string // "export" or "evidence"
	Origin      string
	Exchange    string // evidence: the exchange
	FirstIndex  uint64 // export: first_index; evidence: lowest entry index
	EndIndex    uint64 // export: end_index; evidence: the checkpoint's size
	From, To    string // export: the requested period, as the manifest says
	Entries     int
	ByKind      map[string]int
	Exchanges   int       // distinct exchange ids among the entries
	Denials     int       // denied entries
	First, Last time.Time // earliest and latest entry time (zero when none)
	Partners    []string  // division codes named in from/to, sorted
	Skipped     int       // cross-references (of) to entries not in the bundle
	Checkpoints int
	TreeSize    uint64         // size of the last checkpoint
	Root        [HashSize]byte // its root
	LogKeys     []string       // key ids of the log certificates that signed
}

// String renders the summary as `tongban audit verify` prints it.
func (s *Summary) String() string {
	var b strings.Builder
	switch s.Kind {
	case evidenceKind:
		fmt.Fprintf(&b, "evidence bundle of exchange %s, log %s\n", s.Exchange, s.Origin)
	default:
		fmt.Fprintf(&b, "export of log %s, period %s to %s\n", s.Origin, s.From, s.To)
		fmt.Fprintf(&b, "indexes:      %d to %d\n", s.FirstIndex, s.EndIndex)
	}
	fmt.Fprintf(&b, "checkpoints:  %d verified", s.Checkpoints)
	if s.Checkpoints > 0 {
		fmt.Fprintf(&b, ", last: size %d, root %s", s.TreeSize, base64.StdEncoding.EncodeToString(s.Root[:]))
	}
	b.WriteString("\n")
	if len(s.LogKeys) > 0 {
		fmt.Fprintf(&b, "log keys:     %s\n", strings.Join(s.LogKeys, ", "))
	}
	fmt.Fprintf(&b, "entries:      %d", s.Entries)
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(&b, "%s%s %d", sep, k, s.ByKind[k])
	}
	if len(kinds) > 0 {
		b.WriteString(")")
	}
	b.WriteString("\n")
	if !s.First.IsZero() {
		fmt.Fprintf(&b, "period:       %s to %s\n", rfc3339(s.First), rfc3339(s.Last))
	}
	fmt.Fprintf(&b, "exchanges:    %d\n", s.Exchanges)
	fmt.Fprintf(&b, "denials:      %d\n", s.Denials)
	fmt.Fprintf(&b, "partners:     %s\n", strings.Join(s.Partners, ", "))
	fmt.Fprintf(&b, "cross-references skipped (entry not in bundle): %d\n", s.Skipped)
	b.WriteString("OK\n")
	return b.String()
}

// verifier holds the state of one VerifyBundle run.
type verifier struct {
	files    map[string][]byte
	origin   string
	byName   map[string]*certs.Certificate
	nameOf   map[string]string // key id → file name
	byKeyID  map[string]*certs.Certificate
	ident    map[string]certs.Identity // key id → identity from the subject
	ts       *certs.TrustStore
	anchors  map[string]bool // file names
	logCerts []*certs.Certificate
	used     map[string]bool // key ids of certificates something needed
	refs     map[uint64]ref
	sum      Summary
	xchg     map[string]bool
	parts    map[string]bool
	// lastExchange is the exchange of the entry checked last.
	lastExchange string
}

// ref is what a later entry's `of` may check of an earlier one.
type ref struct {
	kind, to, translated string
}

// VerifyBundle checks an export archive or evidence bundle offline, as
// exchange-log.md "What an auditor checks offline" lists: file digests;
// certificate chains and validity at each entry's time; checkpoint
// signatures (with the out-of-band log certificates when given) and roots
// recomputed from prefix and entries (evidence: inclusion proofs); every
// request, delivery and acknowledgement signature and digest binding;
// cross-references within the bundle. A failure is a *VerifyError wrapping
// ErrBundleInvalid and naming the first failing file or entry.
func VerifyBundle(r io.Reader, opts *VerifyOptions) (*Summary, error) {
	if opts == nil {
		opts = NewVerifyOptions()
	}
	v := &verifier{
		byName: map[string]*certs.Certificate{}, nameOf: map[string]string{},
		byKeyID: map[string]*certs.Certificate{}, ident: map[string]certs.Identity{},
		anchors: map[string]bool{}, used: map[string]bool{}, refs: map[uint64]ref{},
		xchg: map[string]bool{}, parts: map[string]bool{},
	}
	v.sum.ByKind = map[string]int{}
	var err error
	if v.files, err = readTar(r); err != nil {
		return nil, err
	}
	raw, ok := v.files[manifestFile]
	if !ok {
		return nil, fileErr(manifestFile, "missing")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fileErr(manifestFile, "not a JSON object: %v", err)
	}
	if _, isEvidence := keys["kind"]; isEvidence {
		var m EvidenceManifest
		if err := decodeManifest(raw, keys, &m, []string{"kind", "origin", "log_certificates", "trust_anchors", "exchange", "files"}); err != nil {
			return nil, err
		}
		if m.Kind != evidenceKind {
			return nil, fileErr(manifestFile, "kind %q is not %q", m.Kind, evidenceKind)
		}
		err = v.evidence(&m, opts)
	} else {
		var m ExportManifest
		if err := decodeManifest(raw, keys, &m, []string{"origin", "log_certificates", "trust_anchors", "first_index", "end_index", "from", "to", "prefix", "files"}); err != nil {
			return nil, err
		}
		err = v.export(&m, opts)
	}
	if err != nil {
		return nil, err
	}
	for name, c := range v.byName {
		if !v.anchors[name] && !v.used[certs.KeyID(c)] {
			return nil, fileErr(name, "certificate not needed by any entry or checkpoint")
		}
	}
	v.sum.Exchanges = len(v.xchg)
	for p := range v.parts {
		v.sum.Partners = append(v.sum.Partners, p)
	}
	sort.Strings(v.sum.Partners)
	return &v.sum, nil
}

func decodeManifest(raw []byte, keys map[string]json.RawMessage, dst any, want []string) error {
	for _, k := range want {
		if _, ok := keys[k]; !ok {
			return fileErr(manifestFile, "missing %q", k)
		}
	}
	for k := range keys {
		if !slices.Contains(want, k) {
			return fileErr(manifestFile, "unexpected %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fileErr(manifestFile, "%v", err)
	}
	return nil
}

// readTar reads every regular file of the archive (directories are ignored).
func readTar(r io.Reader) (map[string][]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fileErr("archive", "not a tar archive: %v", err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		name := h.Name
		if h.Typeflag != tar.TypeReg {
			return nil, fileErr(name, "not a regular file")
		}
		if name == "" || path.Clean(name) != name || path.IsAbs(name) || strings.HasPrefix(name, "../") {
			return nil, fileErr(name, "bad file name")
		}
		if _, dup := files[name]; dup {
			return nil, fileErr(name, "appears twice in the archive")
		}
		if files[name], err = io.ReadAll(tr); err != nil {
			return nil, fileErr(name, "%v", err)
		}
	}
	return files, nil
}

// checkFiles is check 1: every listed file has its SM3, every file is listed.
func (v *verifier) checkFiles(listed map[string]string) error {
	names := make([]string, 0, len(listed))
	for n := range listed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, ok := v.files[n]
		if !ok || n == manifestFile {
			return fileErr(n, "listed in the manifest but not in the bundle")
		}
		if got := certs.SM3Hex(data); got != listed[n] {
			return fileErr(n, "SM3 is %s, the manifest says %s", got, listed[n])
		}
	}
	for _, n := range v.sortedFiles("") {
		if _, ok := listed[n]; !ok && n != manifestFile {
			return fileErr(n, "not listed in the manifest")
		}
	}
	return nil
}

func (v *verifier) sortedFiles(prefix string) []string {
	var out []string
	for n := range v.files {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// loadCerts parses certs/, checks the trust anchors and that every other
// certificate chains to one, and settles the log certificates.
func (v *verifier) loadCerts(anchors, logs []string, opts *VerifyOptions) error {
	for _, n := range v.sortedFiles(certsDir) {
		cs, err := certs.ParseCertificatesPEM(v.files[n])
		if err != nil {
			return fileErr(n, "%v", err)
		}
		if len(cs) != 1 {
			return fileErr(n, "holds %d certificates, want 1", len(cs))
		}
		if !bytes.Equal(certs.EncodeCertificatePEM(cs[0]), v.files[n]) {
			return fileErr(n, "not in canonical PEM form")
		}
		kid := certs.KeyID(cs[0])
		if other, dup := v.nameOf[kid]; dup {
			return fileErr(n, "same certificate as %s", other)
		}
		v.byName[n], v.nameOf[kid], v.byKeyID[kid] = cs[0], n, cs[0]
	}
	var roots []*certs.Certificate
	for _, n := range anchors {
		c, ok := v.byName[n]
		if !ok {
			return fileErr(manifestFile, "trust anchor %s is not a certificate of the bundle", n)
		}
		if v.anchors[n] {
			return fileErr(manifestFile, "trust anchor %s listed twice", n)
		}
		if !c.BasicConstraintsValid || !c.IsCA || c.CheckSignatureFrom(c) != nil {
			return fileErr(n, "listed as trust anchor but is not a self-signed CA certificate (default SM2 ID)")
		}
		v.anchors[n] = true
		roots = append(roots, c)
	}
	v.ts = certs.NewTrustStore(roots)
	issued := map[string]bool{}
	for _, n := range v.sortedFiles(certsDir) {
		if v.anchors[n] {
			continue
		}
		c := v.byName[n]
		id, err := certs.IdentityFromCertificate(c)
		if err == nil {
			v.ident[certs.KeyID(c)] = id
		} else {
			id = certs.Identity{Role: certs.RoleAuditor} // no identity: never a partner
		}
		if err := v.ts.Add(c, id); err != nil {
			return fileErr(n, "does not chain to a trust anchor of the bundle: %v", err)
		}
		for _, a := range anchors {
			if bytes.Equal(v.byName[a].RawSubject, c.RawIssuer) && c.CheckSignatureFrom(v.byName[a]) == nil {
				issued[a] = true
			}
		}
	}
	for _, a := range anchors {
		if !issued[a] {
			return fileErr(a, "trust anchor issued no certificate of the bundle")
		}
	}
	seen := map[string]bool{}
	for _, n := range logs {
		c, ok := v.byName[n]
		if !ok || v.anchors[n] {
			return fileErr(manifestFile, "log certificate %s is not a certificate of the bundle", n)
		}
		if seen[n] {
			return fileErr(manifestFile, "log certificate %s listed twice", n)
		}
		seen[n] = true
		if len(opts.logCerts) == 0 {
			v.logCerts = append(v.logCerts, c)
		}
	}
	if len(opts.logCerts) > 0 {
		v.logCerts = opts.logCerts
	}
	return nil
}

var checkpointFileName = regexp.MustCompile(`^checkpoints/([0-9]{20})$`)

// openCheckpoints verifies every checkpoint file's signature; the result is
// sorted by size.
func (v *verifier) openCheckpoints() ([]Checkpoint, error) {
	var out []Checkpoint
	signers := map[string]bool{}
	for _, n := range v.sortedFiles(checkpointsDir) {
		mm := checkpointFileName.FindStringSubmatch(n)
		if mm == nil {
			return nil, fileErr(n, "not named by a 20-digit size")
		}
		c, cert, err := OpenCheckpoint(v.files[n], v.origin, v.logCerts)
		if err != nil {
			return nil, fileErr(n, "%v", err)
		}
		if size, _ := strconv.ParseUint(mm[1], 10, 64); size != c.Size {
			return nil, fileErr(n, "holds a checkpoint of size %d", c.Size)
		}
		kid := certs.KeyID(cert)
		v.used[kid] = true
		if !signers[kid] {
			signers[kid] = true
			v.sum.LogKeys = append(v.sum.LogKeys, kid)
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		for _, c := range v.logCerts {
			if kid := certs.KeyID(c); !signers[kid] {
				if n, inBundle := v.nameOf[kid]; inBundle {
					return nil, fileErr(n, "log certificate signed no checkpoint of the bundle")
				}
			}
		}
	}
	v.sum.Checkpoints = len(out)
	if len(out) > 0 {
		v.sum.TreeSize, v.sum.Root = out[len(out)-1].Size, out[len(out)-1].Root
	}
	return out, nil
}

func (v *verifier) export(m *ExportManifest, opts *VerifyOptions) error {
	v.origin = m.Origin
	v.sum.Kind, v.sum.Origin = "export", m.Origin
	v.sum.FirstIndex, v.sum.EndIndex, v.sum.From, v.sum.To = m.FirstIndex, m.EndIndex, m.From, m.To
	if err := v.checkFiles(m.Files); err != nil {
		return err
	}
	for _, t := range []string{m.From, m.To} {
		if _, err := time.Parse(time.RFC3339, t); err != nil {
			return fileErr(manifestFile, "from/to %q is not RFC 3339", t)
		}
	}
	if m.EndIndex < m.FirstIndex {
		return fileErr(manifestFile, "end_index %d is before first_index %d", m.EndIndex, m.FirstIndex)
	}
	if _, ok := v.files[entriesFile]; !ok {
		return fileErr(entriesFile, "missing")
	}
	if err := v.loadCerts(m.TrustAnchors, m.LogCertificates, opts); err != nil {
		return err
	}
	cps, err := v.openCheckpoints()
	if err != nil {
		return err
	}
	switch {
	case m.EndIndex == 0 && len(cps) > 0:
		return fileErr(manifestFile, "end_index 0 but the bundle has checkpoints")
	case m.EndIndex > 0 && (len(cps) == 0 || cps[len(cps)-1].Size != m.EndIndex):
		return fileErr(manifestFile, "no checkpoint of size end_index %d", m.EndIndex)
	case m.FirstIndex > 0 && cps[0].Size != m.FirstIndex:
		return fileErr(manifestFile, "no checkpoint of size first_index %d", m.FirstIndex)
	case len(cps) > 0 && cps[0].Size < m.FirstIndex:
		return fileErr(checkpointName(cps[0].Size), "size is below first_index %d", m.FirstIndex)
	}

	// Check 3: roots recomputed from prefix + entries.
	for i, h := range m.Prefix {
		if len(h) != HashSize {
			return fileErr(manifestFile, "prefix hash %d is %d bytes", i, len(h))
		}
	}
	rng, err := rangeFactory.NewRange(0, m.FirstIndex, m.Prefix)
	if err != nil {
		return fileErr(manifestFile, "prefix is not the compact range of [0, %d): %v", m.FirstIndex, err)
	}
	lines, err := splitLines(v.files[entriesFile])
	if err != nil {
		return fileErr(entriesFile, "%v", err)
	}
	if want := m.EndIndex - m.FirstIndex; uint64(len(lines)) != want {
		return fileErr(entriesFile, "holds %d entries, first_index %d and end_index %d need %d", len(lines), m.FirstIndex, m.EndIndex, want)
	}
	next := 0 // next checkpoint to check
	lastChecked := m.FirstIndex
	checkRoots := func(size uint64) error {
		for next < len(cps) && cps[next].Size == size {
			root, err := rng.GetRootHash(nil)
			if err != nil {
				return fileErr(checkpointName(size), "%v", err)
			}
			if root == nil {
				e := EmptyRoot()
				root = e[:]
			}
			if !bytes.Equal(root, cps[next].Root[:]) {
				if size == m.FirstIndex {
					return fileErr(checkpointName(size), "root does not match the manifest's prefix")
				}
				return fileErr(checkpointName(size), "root does not match prefix + entries %d to %d (an entry from %d on was changed, removed or reordered)", m.FirstIndex, size-1, lastChecked)
			}
			lastChecked = size
			next++
		}
		return nil
	}
	if err := checkRoots(m.FirstIndex); err != nil {
		return err
	}
	for i, line := range lines {
		index := m.FirstIndex + uint64(i)
		if err := v.entry(index, line); err != nil {
			return err
		}
		lh := LeafHash(line)
		if err := rng.Append(lh[:], nil); err != nil {
			return entryErr(index, "%v", err)
		}
		if err := checkRoots(index + 1); err != nil {
			return err
		}
	}
	if next != len(cps) {
		return fileErr(checkpointName(cps[next].Size), "size outside [first_index, end_index]")
	}
	return nil
}

func splitLines(data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("last entry not followed by a newline")
	}
	return bytes.Split(data[:len(data)-1], []byte("\n")), nil
}

var proofFileName = regexp.MustCompile(`^proofs/([0-9]{20})\.json$`)

func (v *verifier) evidence(m *EvidenceManifest, opts *VerifyOptions) error {
	v.origin = m.Origin
	v.sum.Kind, v.sum.Origin, v.sum.Exchange = evidenceKind, m.Origin, m.Exchange
	if err := v.checkFiles(m.Files); err != nil {
		return err
	}
	if err := v.loadCerts(m.TrustAnchors, m.LogCertificates, opts); err != nil {
		return err
	}
	cps, err := v.openCheckpoints()
	if err != nil {
		return err
	}
	if len(cps) != 1 {
		return fileErr(checkpointsDir, "holds %d checkpoints, an evidence bundle has one", len(cps))
	}
	cp := cps[0]
	v.sum.EndIndex = cp.Size
	lines, err := splitLines(v.files[entriesFile])
	if err != nil || len(lines) == 0 {
		return fileErr(entriesFile, "no entries (%v)", err)
	}
	proofsUsed := map[string]bool{}
	var prev uint64
	for i, line := range lines {
		var el EvidenceLine
		if err := decodeStrict(line, &el, "index", "entry"); err != nil {
			return fileErr(entriesFile, "line %d: %v", i+1, err)
		}
		if canon, err := marshalLine(el); err != nil || !bytes.Equal(canon, line) {
			return fileErr(entriesFile, "line %d: not in canonical form", i+1)
		}
		if i > 0 && el.Index <= prev {
			return fileErr(entriesFile, "line %d: index %d not after %d", i+1, el.Index, prev)
		}
		prev = el.Index
		if i == 0 {
			v.sum.FirstIndex = el.Index
		}
		entry := []byte(el.Entry)
		if el.Index >= cp.Size {
			return entryErr(el.Index, "beyond the checkpoint's size %d", cp.Size)
		}
		pn := proofName(el.Index)
		praw, ok := v.files[pn]
		if !ok {
			return fileErr(pn, "missing: entry %d has no inclusion proof", el.Index)
		}
		proofsUsed[pn] = true
		var p InclusionProof
		if err := decodeStrict(praw, &p, "index", "size", "hashes"); err != nil {
			return fileErr(pn, "%v", err)
		}
		if canon, _ := json.Marshal(&p); !bytes.Equal(canon, praw) {
			return fileErr(pn, "not in canonical form")
		}
		if p.Index != el.Index || p.Size != cp.Size {
			return fileErr(pn, "proves index %d in size %d, want %d in %d", p.Index, p.Size, el.Index, cp.Size)
		}
		lh := LeafHash(entry)
		if err := proof.VerifyInclusion(Hasher, p.Index, p.Size, lh[:], p.Hashes, cp.Root[:]); err != nil {
			return entryErr(el.Index, "not included in %s: %v", checkpointName(cp.Size), err)
		}
		if err := v.entry(el.Index, entry); err != nil {
			return err
		}
		if x := v.lastExchange; x != m.Exchange {
			return entryErr(el.Index, "belongs to exchange %q, the bundle is of %q", x, m.Exchange)
		}
	}
	for _, n := range v.sortedFiles(proofsDir) {
		if !proofFileName.MatchString(n) || !proofsUsed[n] {
			return fileErr(n, "proof of no entry in the bundle")
		}
	}
	for _, n := range v.sortedFiles("") {
		if n != manifestFile && n != entriesFile && !strings.HasPrefix(n, certsDir) && !strings.HasPrefix(n, checkpointsDir) && !strings.HasPrefix(n, proofsDir) {
			return fileErr(n, "not part of an evidence bundle")
		}
	}
	return nil
}

// decodeStrict decodes a JSON object that has exactly the given keys.
func decodeStrict(b []byte, dst any, want ...string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return err
	}
	if len(keys) != len(want) {
		return fmt.Errorf("want exactly the keys %v", want)
	}
	for _, k := range want {
		if _, ok := keys[k]; !ok {
			return fmt.Errorf("missing %q", k)
		}
	}
	return json.Unmarshal(b, dst)
}

// marshalLine encodes an evidence line as Evidence writes it (no newline).
func marshalLine(el EvidenceLine) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(el); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
