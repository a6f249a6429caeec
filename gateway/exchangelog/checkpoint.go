package exchangelog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tongban/tongban/certs"
	"golang.org/x/mod/sumdb/note"
)

// DefaultOrigin is the log's origin unless configured otherwise.
const DefaultOrigin = "tongban/guangfo"

// sigTypeSM2SM3 is the signed-note signature type for algorithms it does not
// number: 0xff followed by an identifier.
const sigTypeSM2SM3 = "\xffSM2-SM3"

// Checkpoint errors callers act on.
var (
	// ErrCheckpointMalformed: the note or its body is not a checkpoint.
	ErrCheckpointMalformed = errors.New("exchangelog: malformed checkpoint")
	// ErrCheckpointSignature: no known log key produced a valid signature.
	ErrCheckpointSignature = errors.New("exchangelog: checkpoint signature does not verify")
)

// Checkpoint is the body of a C2SP tlog-checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [HashSize]byte
}

// Body is the checkpoint body: origin, size and base64 root, each line ending
// with a newline.
func (c Checkpoint) Body() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpointBody parses exactly three lines: origin, decimal size
// (no leading zeros), base64 root of 32 bytes.
func ParseCheckpointBody(body []byte) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(string(body), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return c, fmt.Errorf("%w: body is not three lines", ErrCheckpointMalformed)
	}
	c.Origin = lines[0]
	if c.Origin == "" || strings.ContainsAny(c.Origin, " +") {
		return c, fmt.Errorf("%w: bad origin %q", ErrCheckpointMalformed, c.Origin)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return c, fmt.Errorf("%w: bad size %q", ErrCheckpointMalformed, lines[1])
	}
	c.Size = size
	// Strict decoding still skips \r and \n inside the text: only the
	// canonical encoding is accepted, so that the body is the one signed.
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return c, fmt.Errorf("%w: bad root %q", ErrCheckpointMalformed, lines[2])
	}
	copy(c.Root[:], root)
	return c, nil
}

// LogKeyID is the signed-note key ID of a log certificate under an origin:
// the first 4 bytes of SHA-256(origin ‖ 0x0a ‖ 0xff ‖ "SM2-SM3" ‖ DER SPKI).
func LogKeyID(origin string, cert *certs.Certificate) [4]byte {
	h := sha256.New()
	h.Write([]byte(origin))
	h.Write([]byte{'\n'})
	h.Write([]byte(sigTypeSM2SM3))
	h.Write(cert.RawSubjectPublicKeyInfo)
	var id [4]byte
	copy(id[:], h.Sum(nil))
	return id
}

// KeySigner signs with a private key whose certificate it knows; a
// *certs.Signer is one.
type KeySigner interface {
	Sign(msg []byte) ([]byte, error)
	Certificate() *certs.Certificate
}

// noteSigner is a note.Signer over an SM2 key.
type noteSigner struct {
	origin string
	hash   uint32
	s      KeySigner
}

// NewNoteSigner returns a signed-note signer for checkpoints of origin with
// the log key s.
func NewNoteSigner(origin string, s KeySigner) note.Signer {
	id := LogKeyID(origin, s.Certificate())
	return &noteSigner{origin: origin, hash: binary.BigEndian.Uint32(id[:]), s: s}
}

func (n *noteSigner) Name() string                    { return n.origin }
func (n *noteSigner) KeyHash() uint32                 { return n.hash }
func (n *noteSigner) Sign(msg []byte) ([]byte, error) { return n.s.Sign(msg) }

// noteVerifier is a note.Verifier over an SM2 certificate.
type noteVerifier struct {
	origin string
	hash   uint32
	cert   *certs.Certificate
}

// NewNoteVerifier returns a signed-note verifier for checkpoints of origin
// signed by the key of the log certificate cert.
func NewNoteVerifier(origin string, cert *certs.Certificate) note.Verifier {
	id := LogKeyID(origin, cert)
	return &noteVerifier{origin: origin, hash: binary.BigEndian.Uint32(id[:]), cert: cert}
}

func (n *noteVerifier) Name() string    { return n.origin }
func (n *noteVerifier) KeyHash() uint32 { return n.hash }
func (n *noteVerifier) Verify(msg, sig []byte) bool {
	return certs.VerifySignature(n.cert, msg, sig) == nil
}

// SignCheckpoint signs a checkpoint as a signed note with the log key.
func SignCheckpoint(c Checkpoint, s KeySigner) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(c.Body())}, NewNoteSigner(c.Origin, s))
}

// OpenCheckpoint verifies a signed checkpoint of origin with any of the log
// certificates (current and earlier keys) and parses its body. It returns the
// certificate that verified it.
func OpenCheckpoint(msg []byte, origin string, logCerts []*certs.Certificate) (Checkpoint, *certs.Certificate, error) {
	vs := make([]note.Verifier, 0, len(logCerts))
	byHash := make(map[uint32]*certs.Certificate, len(logCerts))
	for _, c := range logCerts {
		v := NewNoteVerifier(origin, c)
		if _, dup := byHash[v.KeyHash()]; dup {
			continue
		}
		byHash[v.KeyHash()] = c
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, nil, fmt.Errorf("%w: signed by no known log key", ErrCheckpointSignature)
		case errors.As(err, &invalid):
			return Checkpoint{}, nil, fmt.Errorf("%w: %v", ErrCheckpointSignature, err)
		}
		return Checkpoint{}, nil, fmt.Errorf("%w: %v", ErrCheckpointMalformed, err)
	}
	if len(n.UnverifiedSigs) != 0 || len(n.Sigs) != 1 {
		return Checkpoint{}, nil, fmt.Errorf("%w: want exactly one signature, by the log key", ErrCheckpointMalformed)
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("%w: origin %q, want %q", ErrCheckpointMalformed, c.Origin, origin)
	}
	if _, err := base64.StdEncoding.Strict().DecodeString(n.Sigs[0].Base64); err != nil {
		return Checkpoint{}, nil, fmt.Errorf("%w: signature is not canonical base64", ErrCheckpointMalformed)
	}
	if !bytes.Equal(msg, append(append(c.Body(), '\n'), signatureLine(n.Sigs[0])...)) {
		return Checkpoint{}, nil, fmt.Errorf("%w: not in canonical form", ErrCheckpointMalformed)
	}
	return c, byHash[n.Sigs[0].Hash], nil
}

func signatureLine(s note.Signature) []byte {
	return []byte("— " + s.Name + " " + s.Base64 + "\n")
}
