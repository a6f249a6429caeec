package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tongban/tongban/certs"
)

// Cookie names. The __Host- prefix makes the browser refuse them unless
// they are Secure, have Path=/ and no Domain (RFC 6265bis).
const (
	sessionCookie = "__Host-tongban-console"
	signInCookie  = "__Host-tongban-signin"
	langCookie    = "tongban-lang"
)

// session is a signed-in browser.
type session struct {
	id      string
	csrf    string
	actor   Actor
	created time.Time
	expires time.Time
	flash   []flash // messages shown once
}

// challenge is one sign-in in progress: shown to a browser (which holds
// binding in a cookie), signed by `tongban console login`, then redeemed
// once by that browser through the link token.
type challenge struct {
	code    string // what the key signs
	binding string // the browser's sign-in cookie
	token   string // the one-time link, set once signed
	actor   *Actor
	expires time.Time
}

// sessions keeps sessions and challenges in memory: a session is valid on
// the replica that made it (several replicas need sticky sessions).
type sessions struct {
	mu         sync.Mutex
	byID       map[string]*session
	challenges map[string]*challenge // by code
	byToken    map[string]*challenge
	now        func() time.Time
	ttl        time.Duration
	signInTTL  time.Duration
}

func newSessions(now func() time.Time, ttl, signInTTL time.Duration) *sessions {
	return &sessions{byID: map[string]*session{}, challenges: map[string]*challenge{}, byToken: map[string]*challenge{},
		now: now, ttl: ttl, signInTTL: signInTTL}
}

// random returns n random bytes, base64url without padding.
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newCode is a challenge code a person can read and copy:
// 24 base32 letters in groups of four.
func newCode() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	s := base32.StdEncoding.EncodeToString(b)
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:i+4])
	}
	return strings.Join(parts, "-")
}

func (s *sessions) sweep(now time.Time) {
	for id, x := range s.byID {
		if now.After(x.expires) {
			delete(s.byID, id)
		}
	}
	for code, c := range s.challenges {
		if now.After(c.expires) {
			delete(s.challenges, code)
			delete(s.byToken, c.token)
		}
	}
}

// maxChallenges bounds the sign-ins in progress: anyone may open the
// sign-in page, so its challenges must not grow without limit.
const maxChallenges = 10000

// newChallenge starts a sign-in for a browser.
func (s *sessions) newChallenge() *challenge {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	for code, c := range s.challenges {
		if len(s.challenges) < maxChallenges {
			break
		}
		delete(s.challenges, code)
		delete(s.byToken, c.token)
	}
	c := &challenge{code: newCode(), binding: random(32), expires: now.Add(s.signInTTL)}
	s.challenges[c.code] = c
	cp := *c
	return &cp
}

// challengeOf returns the browser's challenge (by its sign-in cookie).
func (s *sessions) challengeOf(binding string) *challenge {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, c := range s.challenges {
		if subtle.ConstantTimeCompare([]byte(c.binding), []byte(binding)) == 1 && !now.After(c.expires) {
			cp := *c
			return &cp
		}
	}
	return nil
}

// sign records that actor signed code and returns the one-time link token.
// A challenge is signed once.
func (s *sessions) sign(code string, actor Actor) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.challenges[code]
	if c == nil || s.now().After(c.expires) || c.actor != nil {
		return "", time.Time{}, ErrChallenge
	}
	c.actor = &actor
	c.token = random(32)
	s.byToken[c.token] = c
	return c.token, c.expires, nil
}

// redeem turns a signed challenge into a session, once, for the browser
// that holds its binding.
func (s *sessions) redeem(token, binding string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.byToken[token]
	now := s.now()
	if c == nil || now.After(c.expires) || c.actor == nil {
		return nil, ErrChallenge
	}
	if subtle.ConstantTimeCompare([]byte(c.binding), []byte(binding)) != 1 {
		return nil, ErrChallenge
	}
	delete(s.byToken, token)
	delete(s.challenges, c.code)
	x := &session{id: random(32), csrf: random(32), actor: *c.actor, created: now, expires: now.Add(s.ttl)}
	s.byID[x.id] = x
	return x, nil
}

// get returns the live session with this id.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byID[id]
	if x == nil || s.now().After(x.expires) {
		delete(s.byID, id)
		return nil
	}
	return x
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *sessions) takeFlash(x *session) []flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := x.flash
	x.flash = nil
	return f
}

// checkCSRF compares the request's token (form field "csrf" or header
// X-CSRF-Token) with the session's in constant time.
func checkCSRF(r *http.Request, x *session) error {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.FormValue("csrf")
	}
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(x.csrf)) != 1 {
		return ErrCSRF
	}
	return nil
}

// setCookie writes a Secure, HttpOnly, SameSite=Strict cookie; maxAge < 0
// deletes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// canSignIn: administrators and auditors only.
func canSignIn(role certs.Role) bool {
	return role == certs.RoleAdmin || role == certs.RoleAuditor
}
