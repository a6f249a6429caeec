package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tongban/tongban/certs"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSessionsLifecycle(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 10, 0, 0, 0, cst)}
	s := newSessions(c.now, 30*time.Minute, 5*time.Minute)
	admin := Actor{Identity: certs.Identity{Role: certs.RoleAdmin, KeyID: "k"}}

	ch := s.newChallenge()
	if got := s.challengeOf(ch.binding); got == nil || got.code != ch.code || got.token != "" {
		t.Fatalf("challengeOf: %+v", got)
	}
	if _, _, err := s.sign("WRONG-CODE", admin); err != ErrChallenge {
		t.Errorf("unknown code: %v", err)
	}
	token, _, err := s.sign(ch.code, admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.sign(ch.code, admin); err != ErrChallenge {
		t.Errorf("signed twice: %v", err)
	}
	if got := s.challengeOf(ch.binding); got == nil || got.token != token {
		t.Errorf("the page does not learn the link")
	}
	if _, err := s.redeem(token, "another browser"); err != ErrChallenge {
		t.Errorf("redeemed without the binding: %v", err)
	}
	x, err := s.redeem(token, ch.binding)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.redeem(token, ch.binding); err != ErrChallenge {
		t.Errorf("redeemed twice: %v", err)
	}
	if s.get(x.id) == nil || x.csrf == "" || x.csrf == x.id {
		t.Fatal("no live session or CSRF token")
	}
	c.t = c.t.Add(30*time.Minute + time.Second)
	if s.get(x.id) != nil {
		t.Error("a session outlived its TTL")
	}
}

func TestChallengeExpires(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 10, 0, 0, 0, cst)}
	s := newSessions(c.now, 30*time.Minute, 5*time.Minute)
	ch := s.newChallenge()
	token, _, err := s.sign(ch.code, Actor{})
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(5*time.Minute + time.Second)
	if _, err := s.redeem(token, ch.binding); err != ErrChallenge {
		t.Errorf("an expired link worked: %v", err)
	}
	late := s.newChallenge() // sweeps the old one
	if _, _, err := s.sign(ch.code, Actor{}); err != ErrChallenge || s.challenges[ch.code] != nil {
		t.Errorf("expired challenge kept: %v", err)
	}
	if !strings.Contains(late.code, "-") || len(late.code) != 29 {
		t.Errorf("challenge code %q", late.code)
	}
}

func TestCheckCSRF(t *testing.T) {
	x := &session{csrf: "token"}
	for _, tc := range []struct {
		form, header string
		ok           bool
	}{{"token", "", true}, {"", "token", true}, {"", "", false}, {"tokeN", "", false}, {"token ", "", false}, {"", "tok", false}} {
		r := httptest.NewRequest(http.MethodPost, "/console/x", strings.NewReader("csrf="+tc.form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.header != "" {
			r.Header.Set("X-CSRF-Token", tc.header)
		}
		if err := checkCSRF(r, x); (err == nil) != tc.ok {
			t.Errorf("form %q header %q: %v", tc.form, tc.header, err)
		}
	}
}

func TestSafeBack(t *testing.T) {
	for back, want := range map[string]string{
		"/console/log":                    "/console/log",
		"/console/exchanges?case=LW1&x=y": "/console/exchanges?case=LW1&x=y",
		"":                                "/console/",
		"//evil.example/console/":         "/console/",
		"https://evil.example/console/":   "/console/",
		"/admin/v1/policy":                "/console/",
		"/console/../admin":               "/console/",
		"/console/\\evil":                 "/console/",
		"javascript:alert(1)":             "/console/",
	} {
		if got := safeBack(back); got != want {
			t.Errorf("safeBack(%q) = %q, want %q", back, got, want)
		}
	}
}

func TestChallengesBounded(t *testing.T) {
	c := &clock{time.Date(2026, 11, 27, 10, 0, 0, 0, cst)}
	s := newSessions(c.now, 30*time.Minute, 5*time.Minute)
	for range maxChallenges + 50 {
		s.newChallenge()
	}
	if n := len(s.challenges); n > maxChallenges {
		t.Errorf("%d challenges kept", n)
	}
}
