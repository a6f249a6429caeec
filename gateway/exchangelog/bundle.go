package exchangelog

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
)

// Names inside export archives and evidence bundles.
const (
	manifestFile   = "manifest.json"
	entriesFile    = "entries.jsonl"
	checkpointsDir = "checkpoints/"
	certsDir       = "certs/"
	proofsDir      = "proofs/"
	evidenceKind   = "evidence"
)

func checkpointName(size uint64) string { return fmt.Sprintf("%s%020d", checkpointsDir, size) }

func proofName(index uint64) string { return fmt.Sprintf("%s%020d.json", proofsDir, index) }

// ExportManifest is the manifest.json of an export archive.
type ExportManifest struct {
	Origin          string            `json:"origin"`
	LogCertificates []string          `json:"log_certificates"`
	TrustAnchors    []string          `json:"trust_anchors"`
	FirstIndex      uint64            `json:"first_index"`
	EndIndex        uint64            `json:"end_index"`
	From            string            `json:"from"`
	To              string            `json:"to"`
	Prefix          [][]byte          `json:"prefix"`
	Files           map[string]string `json:"files"`
}

// EvidenceManifest is the manifest.json of an evidence bundle.
type EvidenceManifest struct {
	Kind            string            `json:"kind"`
	Origin          string            `json:"origin"`
	LogCertificates []string          `json:"log_certificates"`
	TrustAnchors    []string          `json:"trust_anchors"`
	Exchange        string            `json:"exchange"`
	Files           map[string]string `json:"files"`
}

// EvidenceLine is one line of an evidence bundle's entries.jsonl: the entry
// as a JSON string (exactly the logged bytes) and its index.
type EvidenceLine struct {
	Index uint64 `json:"index"`
	Entry string `json:"entry"`
}

// ExportCerts are the certificates an export or evidence bundle draws on:
// the trust anchors, and the certificates of partners, administrators and
// the gateway, current and earlier. Only those some entry needs are written
// (with the anchors that issued them); log certificates come from the Log.
type ExportCerts struct {
	TrustAnchors []*certs.Certificate
	Certificates []*certs.Certificate
}

// CertsFromTrustStore collects a trust store's roots and every certificate
// it records.
func CertsFromTrustStore(ts *certs.TrustStore) ExportCerts {
	ec := ExportCerts{TrustAnchors: ts.Roots()}
	for _, id := range ts.Identities() {
		ec.Certificates = append(ec.Certificates, id.Certificate)
	}
	return ec
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_-]+`)

// certFileName names a certificate file by what it is: "ca", or the role and
// name its subject carries (certs.IdentityFromCertificate), and the first 16
// hex digits of its key id. The names are for people; the manifest's lists
// and the certificates themselves are what verification relies on.
func certFileName(c *certs.Certificate, anchor bool) string {
	kid := certs.KeyID(c)[:16]
	switch {
	case anchor:
		return certsDir + "ca-" + kid + ".pem"
	}
	if id, err := certs.IdentityFromCertificate(c); err == nil {
		name := unsafeName.ReplaceAllString(strings.ToLower(id.Name), "_")
		if id.Role == certs.RolePartner {
			name = unsafeName.ReplaceAllString(strings.ToLower(id.Partner+"-"+id.Division), "_")
		}
		return certsDir + string(id.Role) + "-" + name + "-" + kid + ".pem"
	}
	return certsDir + kid + ".pem"
}

// namedSigned is a signed object and its field name.
type namedSigned struct {
	name string
	s    *Signed
}

// signedObjects returns the signed objects an entry carries, in field order.
func signedObjects(e Entry) []namedSigned {
	switch e := e.(type) {
	case *ExchangeEntry:
		return []namedSigned{{"request", &e.Request}}
	case *DeniedEntry:
		return []namedSigned{{"request", &e.Request}}
	case *StatusEntry:
		return []namedSigned{{"request", &e.Request}}
	case *PolicyActivatedEntry:
		return []namedSigned{{"request", &e.Request}}
	case *DeliveredEntry:
		return []namedSigned{{"delivery", &e.Delivery}, {"ack", &e.Ack}}
	case *RefusedByPartnerEntry:
		return []namedSigned{{"delivery", &e.Delivery}, {"ack", &e.Ack}}
	}
	return nil
}

func rfc3339(t time.Time) string { return t.In(CST).Format(time.RFC3339) }
