package httpsig

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tongban/tongban/certs"
)

// Wire constants of the profile.
const (
	Label = "tb"      // the signature label
	Alg   = "sm2-sm3" // the alg parameter

	HeaderSignature      = "Signature"
	HeaderSignatureInput = "Signature-Input"
	HeaderContentDigest  = "Content-Digest"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Default limits.
const (
	DefaultMaxBody = 16 << 20          // bytes of request body
	DefaultWindow  = 300 * time.Second // allowed skew of created, and nonce lifetime
)

// maxFieldBytes bounds every header field the verifier reads, so that a
// huge header is refused before it is parsed.
const maxFieldBytes = 8 << 10

// component is one covered component: a name and whether it has the req
// flag (RFC 9421 §2.4).
type component struct {
	name string
	req  bool
}

func (c component) String() string {
	if c.req {
		return strconv.Quote(c.name) + ";req"
	}
	return strconv.Quote(c.name)
}

var (
	componentsWithBody = []component{{"@method", false}, {"@target-uri", false}, {"content-digest", false}, {"content-type", false}}
	componentsNoBody   = []component{{"@method", false}, {"@target-uri", false}}
	componentIdemKey   = component{"idempotency-key", false}
	componentsResponse = []component{
		{"@status", false}, {"content-digest", false}, {"content-type", false},
		{"@method", true}, {"@target-uri", true}, {"content-digest", true},
	}
)

// methodHasBody says which covered components a request method takes; ok is
// false for methods the profile does not cover.
func methodHasBody(method string) (body, ok bool) {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true, true
	case http.MethodGet, http.MethodDelete:
		return false, true
	}
	return false, false
}

// sigParams are the signature parameters, always in this order.
type sigParams struct {
	components []component
	created    int64
	nonce      string
	keyID      string
}

// serialize is the RFC 8941 serialization of the inner list and its
// parameters: the value of the @signature-params line and of the tb member
// of Signature-Input.
func (p *sigParams) serialize() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range p.components {
		if i > 0 {
			b.WriteByte(' ')
		}
		serializeString(&b, c.name)
		if c.req {
			b.WriteString(";req")
		}
	}
	b.WriteString(");created=")
	b.WriteString(strconv.FormatInt(p.created, 10))
	b.WriteString(";nonce=")
	serializeString(&b, p.nonce)
	b.WriteString(";keyid=")
	serializeString(&b, p.keyID)
	b.WriteString(";alg=")
	serializeString(&b, Alg)
	return b.String()
}

// buildBase writes the signature base (RFC 9421 §2.5): one line per
// component, then the @signature-params line, joined by "\n" with no
// trailing newline. values holds the component values in order.
func buildBase(p *sigParams, values []string) string {
	var b strings.Builder
	for i, c := range p.components {
		b.WriteString(c.String())
		b.WriteString(": ")
		b.WriteString(values[i])
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(p.serialize())
	return b.String()
}

// fieldValue is a header field's value as the base uses it: each field
// line trimmed, repeated lines joined with ", ". ok is false when absent.
func fieldValue(h http.Header, name string) (string, bool) {
	lines := h.Values(name)
	if len(lines) == 0 {
		return "", false
	}
	if len(lines) == 1 {
		return strings.Trim(lines[0], " \t"), true
	}
	trimmed := make([]string, len(lines))
	for i, l := range lines {
		trimmed[i] = strings.Trim(l, " \t")
	}
	return strings.Join(trimmed, ", "), true
}

// ContentDigest returns the Content-Digest field value for body:
// sm3=:<base64 SM3>:.
func ContentDigest(body []byte) string {
	return contentDigestOf(certs.SM3(body))
}

// contentDigestOf is the Content-Digest field value for a body whose SM3 is
// sum.
func contentDigestOf(sum [certs.SM3Size]byte) string {
	return "sm3=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// parseContentDigest reads a Content-Digest field that must hold exactly
// one member, sm3, a byte sequence of 32 bytes without parameters.
func parseContentDigest(v string) ([]byte, error) {
	if len(v) > maxFieldBytes {
		return nil, errors.New("Content-Digest too long")
	}
	members, err := parseDictionary(v)
	if err != nil {
		return nil, fmt.Errorf("Content-Digest: %w", err)
	}
	if len(members) != 1 || members[0].key != "sm3" || members[0].counted != 1 {
		return nil, errors.New("Content-Digest must hold exactly one member, sm3")
	}
	m := members[0]
	if m.inner || m.item.bare.kind != sfBytes || len(m.item.params) != 0 || len(m.item.bare.b) != certs.SM3Size {
		return nil, errors.New("Content-Digest sm3 must be a 32-byte byte sequence")
	}
	return m.item.bare.b, nil
}

// TargetURI is the @target-uri a sender signs for u (signing.md): scheme
// and host in lower case, the default port (80 for http, 443 for https)
// omitted, then the path and query as they are sent.
func TargetURI(u *url.URL) (string, error) {
	base, err := normalizeOrigin(u)
	if err != nil {
		return "", err
	}
	return base + u.RequestURI(), nil
}

// NormalizeBaseURL checks and normalizes a public base URL (scheme and
// authority only, such as "https://127.0.0.1:8443"): lower case, default
// port omitted, no trailing slash. The verifier rebuilds @target-uri from
// it.
func NormalizeBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("httpsig: public URL: %w", err)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("httpsig: public URL %q must be scheme and authority only", s)
	}
	return normalizeOrigin(u)
}

func normalizeOrigin(u *url.URL) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("httpsig: URL %q: scheme must be http or https", u.String())
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", fmt.Errorf("httpsig: URL %q has no host", u.String())
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// requestTarget is the path and query of a received request, as received.
func requestTarget(r *http.Request) string {
	rt := r.RequestURI
	switch {
	case strings.HasPrefix(rt, "/"):
		return rt
	case rt == "":
		return r.URL.RequestURI()
	}
	// absolute-form (RFC 9112 §3.2.2): keep its path and query.
	if u, err := url.ParseRequestURI(rt); err == nil {
		return u.RequestURI()
	}
	return r.URL.RequestURI()
}

// RequestComponents are the values of a request that a signed response
// covers with the req flag: its method, its @target-uri and its
// Content-Digest field value.
type RequestComponents struct {
	Method        string
	TargetURI     string
	ContentDigest string
}

// SentRequestComponents returns the components of a request as the client
// sent it (after SignRequest): its method, its URL normalized as
// TargetURI, and its Content-Digest header.
func SentRequestComponents(req *http.Request) (RequestComponents, error) {
	target, err := TargetURI(req.URL)
	if err != nil {
		return RequestComponents{}, err
	}
	cd, _ := fieldValue(req.Header, HeaderContentDigest)
	return RequestComponents{Method: req.Method, TargetURI: target, ContentDigest: cd}, nil
}

// ParseContentType returns the media type and charset parameter of a
// Content-Type value, both in lower case, for the case-insensitive
// comparison signing.md asks for ("application/XML; Charset=gbk" is
// application/xml, gbk). The signature base itself keeps the value as
// received.
func ParseContentType(v string) (mediaType, charset string, err error) {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return "", "", fmt.Errorf("httpsig: Content-Type %q: %w", v, err)
	}
	return mt, strings.ToLower(params["charset"]), nil
}
