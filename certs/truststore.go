package certs

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"time"
)

// Role is what a certificate's holder may do at tongban.
type Role string

// The roles of gateway-api.md, plus the gateway's and the log's own keys.
const (
	RolePartner Role = "partner" // a district approval system, bound to its division
	RoleAdmin   Role = "admin"   // edits and activates policy
	RoleAuditor Role = "auditor" // reads the exchange log
	RoleGateway Role = "gateway" // tongban itself: deliveries and receipts
	RoleLog     Role = "log"     // signs the log's checkpoints
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RolePartner, RoleAdmin, RoleAuditor, RoleGateway, RoleLog:
		return true
	}
	return false
}

// Identity is who signed: found in the trust store by key id.
type Identity struct {
	KeyID       string       // lowercase hex SM3 of the certificate
	Role        Role         // what the signer may do
	Partner     string       // for RolePartner: "nanhai" or "liwan"
	Division    string       // for RolePartner: the division code, e.g. "440605"
	Name        string       // a display name (the certificate's CN)
	Certificate *Certificate // the signer's certificate
}

// Trust store errors, as signing.md names them.
var (
	// ErrKeyUnknown means no certificate with that key id is in the store.
	ErrKeyUnknown = errors.New("certs: key unknown")
	// ErrCertificateInvalid means the certificate is known but not usable
	// now: expired or not yet valid, not chaining to a trusted root with the
	// default SM2 ID (for instance signed with an empty ID), or revoked.
	ErrCertificateInvalid = errors.New("certs: certificate invalid")
	// ErrIdentityInvalid means an Identity given to the store is incomplete
	// (unknown role, partner without partner name or division).
	ErrIdentityInvalid = errors.New("certs: invalid identity")
)

// TrustStore maps key ids to identities whose certificates chain to one of
// its roots. Chain signatures are checked once, when a certificate is added;
// validity periods and revocation are checked at every Lookup, against the
// time the caller gives. Only certificates issued directly by a root are
// supported (no intermediates). It is safe for concurrent use.
type TrustStore struct {
	mu             sync.RWMutex
	roots          []*rootEntry
	byKeyID        map[string]*trustEntry
	revokedKeyIDs  map[string]bool
	revokedSerials map[string]bool
}

type rootEntry struct {
	cert *Certificate
	err  error // why this root cannot be used, nil when it can
}

type trustEntry struct {
	id     Identity
	issuer *Certificate // the root it chains to (nil when chainErr != nil)
	err    error        // why the chain does not verify
}

// NewTrustStore returns a store trusting roots. A root is usable only if it
// is a CA certificate whose self-signature verifies with the default SM2 ID;
// certificates issued by an unusable root are refused as invalid.
func NewTrustStore(roots []*Certificate) *TrustStore {
	ts := &TrustStore{
		byKeyID:        make(map[string]*trustEntry),
		revokedKeyIDs:  map[string]bool{},
		revokedSerials: map[string]bool{},
	}
	for _, root := range roots {
		ts.roots = append(ts.roots, &rootEntry{cert: root, err: checkRoot(root)})
	}
	return ts
}

func checkRoot(root *Certificate) error {
	if _, err := sm2PublicKey(root); err != nil {
		return err
	}
	if !root.BasicConstraintsValid || !root.IsCA {
		return fmt.Errorf("root %q is not a CA certificate", root.Subject.CommonName)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		if emptyIDSigned(root, root) {
			return fmt.Errorf("root %q is self-signed with an empty SM2 ID, not %s", root.Subject.CommonName, DefaultSignerID)
		}
		return fmt.Errorf("root %q: self-signature does not verify: %v", root.Subject.CommonName, err)
	}
	return nil
}

// emptyIDSigned reports whether cert's signature verifies by parent's key
// with an empty SM2 ID.
func emptyIDSigned(cert, parent *Certificate) bool {
	return verifyWithEmptyID(parent, cert.RawTBSCertificate, cert.Signature)
}

// IdentityFromCertificate reads an identity from the subject of a
// certificate laid out as InitDevPKI does: OU = role, CN = name (for a
// partner, its name, e.g. "nanhai"), L = division code (partners).
func IdentityFromCertificate(cert *Certificate) (Identity, error) {
	id := Identity{KeyID: KeyID(cert), Name: cert.Subject.CommonName, Certificate: cert}
	if len(cert.Subject.OrganizationalUnit) > 0 {
		id.Role = Role(cert.Subject.OrganizationalUnit[0])
	}
	if id.Role == RolePartner {
		id.Partner = cert.Subject.CommonName
		if len(cert.Subject.Locality) > 0 {
			id.Division = cert.Subject.Locality[0]
		}
	}
	if err := validIdentity(id); err != nil {
		return Identity{}, err
	}
	return id, nil
}

func validIdentity(id Identity) error {
	if !id.Role.Valid() {
		return fmt.Errorf("%w: unknown role %q", ErrIdentityInvalid, id.Role)
	}
	if id.Role == RolePartner && (id.Partner == "" || id.Division == "") {
		return fmt.Errorf("%w: a partner needs a partner name and a division", ErrIdentityInvalid)
	}
	return nil
}

// Add records cert under its key id with identity id (id.KeyID and
// id.Certificate are filled in from cert). The chain to a root is verified
// now, with the default SM2 ID. A certificate whose chain does not verify is
// still recorded, so that messages signed with it are refused as
// ErrCertificateInvalid rather than ErrKeyUnknown, and Add returns an error
// wrapping ErrCertificateInvalid. An incomplete identity is not recorded
// (ErrIdentityInvalid). Adding the same certificate again replaces its
// identity.
func (ts *TrustStore) Add(cert *Certificate, id Identity) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate", ErrIdentityInvalid)
	}
	id.KeyID = KeyID(cert)
	id.Certificate = cert
	if id.Name == "" {
		id.Name = cert.Subject.CommonName
	}
	if err := validIdentity(id); err != nil {
		return err
	}
	e := &trustEntry{id: id}
	e.issuer, e.err = ts.chain(cert)
	ts.mu.Lock()
	ts.byKeyID[id.KeyID] = e
	ts.mu.Unlock()
	if e.err != nil {
		return fmt.Errorf("%w: %s (%s): %v", ErrCertificateInvalid, id.Name, id.KeyID, e.err)
	}
	return nil
}

// AddCertificate adds cert with the identity read from its subject
// (IdentityFromCertificate).
func (ts *TrustStore) AddCertificate(cert *Certificate) (Identity, error) {
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		return Identity{}, err
	}
	if err := ts.Add(cert, id); err != nil {
		return id, err
	}
	return id, nil
}

// chain finds the root that issued cert and verifies its signature with
// the default SM2 ID. ts.roots is immutable after NewTrustStore.
func (ts *TrustStore) chain(cert *Certificate) (*Certificate, error) {
	if _, err := sm2PublicKey(cert); err != nil {
		return nil, err
	}
	var emptyID bool
	var lastErr error
	for _, root := range ts.roots {
		if !bytes.Equal(root.cert.RawSubject, cert.RawIssuer) {
			continue
		}
		if bytes.Equal(root.cert.Raw, cert.Raw) {
			if root.err != nil {
				lastErr = root.err
				continue
			}
			return root.cert, nil
		}
		err := cert.CheckSignatureFrom(root.cert)
		if err == nil {
			if root.err != nil {
				lastErr = root.err
				continue
			}
			return root.cert, nil
		}
		lastErr = err
		if emptyIDSigned(cert, root.cert) {
			emptyID = true
		}
	}
	switch {
	case emptyID:
		return nil, fmt.Errorf("signed with an empty SM2 ID, not %s (OpenSSL without -sigopt distid:%s?)", DefaultSignerID, DefaultSignerID)
	case lastErr != nil:
		return nil, lastErr
	default:
		return nil, errors.New("not issued by a trusted root")
	}
}

// Lookup returns the identity of keyID if its certificate is usable at now:
// it wraps ErrKeyUnknown when the key id is not in the store, and
// ErrCertificateInvalid when the certificate or its root is outside its
// validity period at now, its chain does not verify with the default ID, or
// it is revoked.
func (ts *TrustStore) Lookup(keyID string, now time.Time) (Identity, error) {
	ts.mu.RLock()
	e, ok := ts.byKeyID[keyID]
	var revoked bool
	if ok {
		revoked = ts.revokedKeyIDs[keyID] || ts.revokedSerials[serialKey(e.id.Certificate.SerialNumber)]
	}
	ts.mu.RUnlock()
	if !ok {
		return Identity{}, ErrKeyUnknown
	}
	if e.err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrCertificateInvalid, e.err)
	}
	if revoked {
		return Identity{}, fmt.Errorf("%w: certificate revoked", ErrCertificateInvalid)
	}
	for _, c := range []*Certificate{e.id.Certificate, e.issuer} {
		if now.Before(c.NotBefore) {
			return Identity{}, fmt.Errorf("%w: %q not valid before %s", ErrCertificateInvalid, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if now.After(c.NotAfter) {
			return Identity{}, fmt.Errorf("%w: %q expired at %s", ErrCertificateInvalid, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return e.id, nil
}

func serialKey(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// SetRevoked replaces the set of revoked certificates: by key id, and by
// serial number (serials are matched against certificates in this store,
// which all come from its roots).
func (ts *TrustStore) SetRevoked(keyIDs []string, serials []*big.Int) {
	k := make(map[string]bool, len(keyIDs))
	for _, id := range keyIDs {
		k[id] = true
	}
	s := make(map[string]bool, len(serials))
	for _, n := range serials {
		if n != nil {
			s[serialKey(n)] = true
		}
	}
	ts.mu.Lock()
	ts.revokedKeyIDs, ts.revokedSerials = k, s
	ts.mu.Unlock()
}

// Identities returns every recorded identity, including those whose
// certificates are not usable, sorted by role, then name, then key id.
func (ts *TrustStore) Identities() []Identity {
	ts.mu.RLock()
	out := make([]Identity, 0, len(ts.byKeyID))
	for _, e := range ts.byKeyID {
		out = append(out, e.id)
	}
	ts.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.KeyID < b.KeyID
	})
	return out
}

// Roots returns the store's trust anchors.
func (ts *TrustStore) Roots() []*Certificate {
	out := make([]*Certificate, len(ts.roots))
	for i, r := range ts.roots {
		out[i] = r.cert
	}
	return out
}

// Certificate returns the certificate recorded under keyID, whether or not
// it is usable now (for auditors checking old signatures), or nil.
func (ts *TrustStore) Certificate(keyID string) *Certificate {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	if e, ok := ts.byKeyID[keyID]; ok {
		return e.id.Certificate
	}
	return nil
}
