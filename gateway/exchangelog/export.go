package exchangelog

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/tongban/tongban/certs"
)

// Export errors callers act on.
var (
	// ErrBadRange: the period ends before it starts.
	ErrBadRange = errors.New("exchangelog: bad export range")
	// ErrMissingCertificate: an entry or checkpoint needs a certificate (or
	// the anchor that issued one) that was not given.
	ErrMissingCertificate = errors.New("exchangelog: certificate not available")
	// ErrNotCheckpointed: some entries of the exchange are not yet covered
	// by a signed checkpoint; retry after the signing interval.
	ErrNotCheckpointed = errors.New("exchangelog: entries not yet covered by a checkpoint")
)

// exportBatch is how many entries are read from the store at once.
const exportBatch = 1024

// Export writes the export archive (exchange-log.md, "Export archive") of the
// period [from, to]: the entries between the last checkpoints signed at or
// before from and to, every checkpoint in between, the prefix compact range,
// the certificates they need, and the manifest. The manifest is written
// first and entries.jsonl last, so a reader can check it while streaming.
func (l *Log) Export(ctx context.Context, w io.Writer, from, to time.Time, ec ExportCerts) error {
	if to.Before(from) {
		return fmt.Errorf("%w: %s is before %s", ErrBadRange, rfc3339(to), rfc3339(from))
	}
	var first, end uint64
	if cp, err := l.store.CheckpointAtOrBefore(ctx, from); err != nil {
		return err
	} else if cp != nil {
		first = cp.Size
	}
	if cp, err := l.store.CheckpointAtOrBefore(ctx, to); err != nil {
		return err
	} else if cp != nil {
		end = cp.Size
	}
	if end > l.tree.size() { // signed by another replica since our last Sync
		l.syncMu.Lock()
		_, err := l.tree.integrate(ctx)
		l.syncMu.Unlock()
		if err != nil {
			return err
		}
	}
	if end < first || end > l.tree.size() {
		return fmt.Errorf("%w: checkpoint sizes %d..%d, tree size %d", ErrInconsistent, first, end, l.tree.size())
	}
	var cps []StoredCheckpoint
	if end > 0 {
		var err error
		if cps, err = l.store.Checkpoints(ctx, first, end); err != nil {
			return err
		}
		if len(cps) == 0 || cps[len(cps)-1].Size != end {
			return fmt.Errorf("%w: store has no checkpoint of size %d", ErrInconsistent, end)
		}
	}
	logUsed, err := l.checkpointSigners(cps)
	if err != nil {
		return err
	}
	prefix, err := l.tree.rangeHashes(ctx, first)
	if err != nil {
		return err
	}

	// Pass 1: digest and length of entries.jsonl, key ids the entries use.
	keyIDs := map[string]bool{}
	entriesDigest := certs.NewSM3()
	var entriesLen int64
	err = l.eachEntry(ctx, first, end, func(e StoredEntry) error {
		parsed, err := ParseEntry(e.Bytes)
		if err != nil {
			return fmt.Errorf("exchangelog: entry %d: %w", e.Index, err)
		}
		for _, s := range signedObjects(parsed) {
			keyIDs[s.s.KeyID] = true
		}
		entriesDigest.Write(e.Bytes)
		entriesDigest.Write([]byte{'\n'})
		entriesLen += int64(len(e.Bytes)) + 1
		return nil
	})
	if err != nil {
		return err
	}

	files, anchors, logs, err := selectCerts(keyIDs, logUsed, ec)
	if err != nil {
		return err
	}
	for _, cp := range cps {
		files = append(files, bundleFile{checkpointName(cp.Size), cp.Note})
	}
	m := ExportManifest{
		Origin:          l.origin,
		LogCertificates: logs,
		TrustAnchors:    anchors,
		FirstIndex:      first,
		EndIndex:        end,
		From:            rfc3339(from),
		To:              rfc3339(to),
		Prefix:          nonNil(prefix),
		Files:           fileDigests(files),
	}
	m.Files[entriesFile] = hex.EncodeToString(entriesDigest.Sum(nil))

	tw := tar.NewWriter(w)
	if err := writeManifest(tw, m); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeTarFile(tw, f.name, f.data); err != nil {
			return err
		}
	}
	// Pass 2: stream entries.jsonl, checking it is what pass 1 saw.
	if err := tw.WriteHeader(tarHeader(entriesFile, entriesLen)); err != nil {
		return err
	}
	again := certs.NewSM3()
	out := io.MultiWriter(tw, again)
	err = l.eachEntry(ctx, first, end, func(e StoredEntry) error {
		_, err := out.Write(append(e.Bytes[:len(e.Bytes):len(e.Bytes)], '\n'))
		return err
	})
	if err != nil {
		return err
	}
	if !bytes.Equal(again.Sum(nil), entriesDigest.Sum(nil)) {
		return fmt.Errorf("%w: entries changed while exporting", ErrInconsistent)
	}
	return tw.Close()
}

// eachEntry calls fn for the stored entries [start, end) in order, checking
// that the store returns each index once.
func (l *Log) eachEntry(ctx context.Context, start, end uint64, fn func(StoredEntry) error) error {
	next := start
	for next < end {
		es, err := l.store.Entries(ctx, next, min(end, next+exportBatch))
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("%w: store returned no entries from %d", ErrInconsistent, next)
		}
		for _, e := range es {
			if e.Index != next {
				return fmt.Errorf("%w: store returned entry %d, want %d", ErrInconsistent, e.Index, next)
			}
			if err := fn(e); err != nil {
				return err
			}
			next++
		}
	}
	return nil
}

// checkpointSigners verifies stored checkpoints and returns the log
// certificates that signed them.
func (l *Log) checkpointSigners(cps []StoredCheckpoint) ([]*certs.Certificate, error) {
	var used []*certs.Certificate
	for _, cp := range cps {
		c, cert, err := OpenCheckpoint(cp.Note, l.origin, l.LogCertificates())
		if err != nil {
			return nil, fmt.Errorf("stored checkpoint %d: %w", cp.Size, err)
		}
		if c.Size != cp.Size {
			return nil, fmt.Errorf("%w: checkpoint stored as size %d says %d", ErrInconsistent, cp.Size, c.Size)
		}
		if !slices.ContainsFunc(used, cert.Equal) {
			used = append(used, cert)
		}
	}
	return used, nil
}

// Evidence writes the evidence bundle of one exchange (exchange-log.md,
// "Evidence bundle"): its entries, their inclusion proofs to the latest
// checkpoint, that checkpoint, the certificates, and the manifest. An
// unknown exchange is ErrNotFound; entries not yet covered by a checkpoint
// (even after a Sync) are ErrNotCheckpointed.
func (l *Log) Evidence(ctx context.Context, w io.Writer, exchangeID string, ec ExportCerts) error {
	es, err := l.store.EntriesOfExchange(ctx, exchangeID)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		return fmt.Errorf("%w: exchange %q", ErrNotFound, exchangeID)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Index < es[j].Index })
	last := es[len(es)-1].Index
	if cp, _, ok := l.LatestCheckpoint(); !ok || cp.Size <= last {
		if err := l.Sync(ctx); err != nil {
			return err
		}
	}
	l.mu.RLock()
	stored, cp := l.latest, l.latestCP
	l.mu.RUnlock()
	if stored == nil || cp.Size <= last {
		return fmt.Errorf("%w: entry %d", ErrNotCheckpointed, last)
	}
	logUsed, err := l.checkpointSigners([]StoredCheckpoint{*stored})
	if err != nil {
		return err
	}

	keyIDs := map[string]bool{}
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	enc.SetEscapeHTML(false)
	var proofs []bundleFile
	for _, e := range es {
		parsed, err := ParseEntry(e.Bytes)
		if err != nil {
			return fmt.Errorf("exchangelog: entry %d: %w", e.Index, err)
		}
		for _, s := range signedObjects(parsed) {
			keyIDs[s.s.KeyID] = true
		}
		if err := enc.Encode(EvidenceLine{Index: e.Index, Entry: string(e.Bytes)}); err != nil {
			return err
		}
		p, err := l.InclusionProof(ctx, e.Index, cp.Size)
		if err != nil {
			return err
		}
		if err := p.Verify(LeafHash(e.Bytes), cp.Root); err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrInconsistent, e.Index, err)
		}
		pj, err := json.Marshal(p)
		if err != nil {
			return err
		}
		proofs = append(proofs, bundleFile{proofName(e.Index), pj})
	}

	files, anchors, logs, err := selectCerts(keyIDs, logUsed, ec)
	if err != nil {
		return err
	}
	files = append(files, bundleFile{checkpointName(cp.Size), stored.Note})
	files = append(files, proofs...)
	files = append(files, bundleFile{entriesFile, lines.Bytes()})
	m := EvidenceManifest{
		Kind:            evidenceKind,
		Origin:          l.origin,
		LogCertificates: logs,
		TrustAnchors:    anchors,
		Exchange:        exchangeID,
		Files:           fileDigests(files),
	}
	tw := tar.NewWriter(w)
	if err := writeManifest(tw, m); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeTarFile(tw, f.name, f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

type bundleFile struct {
	name string
	data []byte
}

func fileDigests(files []bundleFile) map[string]string {
	m := make(map[string]string, len(files)+1)
	for _, f := range files {
		m[f.name] = certs.SM3Hex(f.data)
	}
	return m
}

// selectCerts picks the certificates the key ids and log keys need, and the
// anchors that issued them, as files; it returns the manifest's lists.
func selectCerts(keyIDs map[string]bool, logCerts []*certs.Certificate, ec ExportCerts) (files []bundleFile, anchors, logs []string, err error) {
	pool := map[string]*certs.Certificate{}
	for _, c := range ec.Certificates {
		pool[certs.KeyID(c)] = c
	}
	kids := make([]string, 0, len(keyIDs))
	for k := range keyIDs {
		kids = append(kids, k)
	}
	sort.Strings(kids)
	var leaves []*certs.Certificate
	seen := map[string]string{} // key id → file name
	add := func(c *certs.Certificate, anchor bool) string {
		kid := certs.KeyID(c)
		if name, ok := seen[kid]; ok {
			return name
		}
		name := certFileName(c, anchor)
		seen[kid] = name
		files = append(files, bundleFile{name, certs.EncodeCertificatePEM(c)})
		if !anchor {
			leaves = append(leaves, c)
		}
		return name
	}
	for _, c := range logCerts {
		logs = append(logs, add(c, false))
	}
	for _, k := range kids {
		c, ok := pool[k]
		if !ok {
			return nil, nil, nil, fmt.Errorf("%w: key id %s", ErrMissingCertificate, k)
		}
		add(c, false)
	}
	for _, c := range leaves {
		a := issuingAnchor(c, ec.TrustAnchors)
		if a == nil {
			return nil, nil, nil, fmt.Errorf("%w: no trust anchor issued %q (%s)", ErrMissingCertificate, c.Subject.CommonName, certs.KeyID(c))
		}
		if _, ok := seen[certs.KeyID(a)]; !ok {
			anchors = append(anchors, add(a, true))
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	sort.Strings(anchors)
	return files, nonNilStrings(anchors), nonNilStrings(logs), nil
}

// issuingAnchor is the anchor whose key signed c (with the default SM2 ID).
func issuingAnchor(c *certs.Certificate, anchors []*certs.Certificate) *certs.Certificate {
	for _, a := range anchors {
		if bytes.Equal(a.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(a) == nil {
			return a
		}
	}
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// tarEpoch dates every file of an archive: archives of the same data are
// byte-identical.
var tarEpoch = time.Unix(0, 0).UTC()

func tarHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: tarEpoch, Format: tar.FormatUSTAR}
}

func writeTarFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(tarHeader(name, int64(len(data)))); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func writeManifest(tw *tar.Writer, m any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(m); err != nil {
		return err
	}
	return writeTarFile(tw, manifestFile, buf.Bytes())
}
