package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tongban/tongban/httpsig"
)

// SignInPath is where `tongban console login` posts the signed challenge.
const SignInPath = "/console/login"

// SignInRequest is the body of the signed sign-in request
// (Content-Type application/json).
type SignInRequest struct {
	Challenge string `json:"challenge"`
}

// SignInResponse answers a verified sign-in: the one-time link that turns
// the browser that showed the challenge into a session.
type SignInResponse struct {
	Link    string    `json:"link"`
	Role    string    `json:"role"`
	KeyID   string    `json:"keyid"`
	Expires time.Time `json:"expires"`
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.current(r) != nil {
		http.Redirect(w, r, "/console/exchanges", http.StatusSeeOther)
		return
	}
	ch := c.s.newChallenge()
	setCookie(w, signInCookie, ch.binding, c.o.ChallengeTTL)
	c.render(w, r, http.StatusOK, "login", c.view(r, nil, "login.title", "", map[string]any{
		"Code": ch.code, "PublicURL": c.o.PublicURL, "Expires": ch.expires,
	}))
}

// signIn is the signed request of `tongban console login`: verified like
// every signed API request, refused for any role but administrator and
// auditor, and answered with the one-time link. Errors are problem+json.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBytes)
	vr, err := c.o.Backend.VerifySignIn(r)
	if err != nil {
		var he *httpsig.Error
		if !errors.As(err, &he) {
			c.o.Logger.ErrorContext(r.Context(), "console sign-in", "err", err)
			he = httpsig.ErrInternal
		}
		httpsig.WriteError(w, r, he)
		return
	}
	id := vr.Identity
	if !canSignIn(id.Role) {
		c.o.Logger.InfoContext(r.Context(), "console sign-in refused", "role", id.Role, "keyid", id.KeyID)
		httpsig.WriteProblem(w, r, http.StatusForbidden, "forbidden", "Forbidden",
			fmt.Sprintf("only administrators and auditors may sign in to the console, not a %s key", id.Role), nil)
		return
	}
	if mt, _, _ := httpsig.ParseContentType(vr.ContentType); mt != "application/json" {
		httpsig.WriteProblem(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "Unsupported media type", "the sign-in is application/json", nil)
		return
	}
	var req SignInRequest
	if err := json.Unmarshal(vr.Body, &req); err != nil || req.Challenge == "" {
		httpsig.WriteProblem(w, r, http.StatusBadRequest, "malformed", "Malformed request", `the body is {"challenge": "…"}`, nil)
		return
	}
	token, expires, err := c.s.sign(req.Challenge, Actor{Identity: id, SignIn: vr.Request})
	if err != nil {
		httpsig.WriteProblem(w, r, http.StatusBadRequest, "challenge", "Unknown challenge",
			"the challenge is unknown, expired or already signed: reload the console's sign-in page", nil)
		return
	}
	c.o.Logger.InfoContext(r.Context(), "console sign-in signed", "role", id.Role, "keyid", id.KeyID)
	writeJSON(w, http.StatusCreated, SignInResponse{Link: c.o.PublicURL + "/console/login/" + token, Role: string(id.Role), KeyID: id.KeyID, Expires: expires})
}

// poll tells the sign-in page whether its challenge has been signed, so it
// can follow the link by itself.
func (c *Console) poll(w http.ResponseWriter, r *http.Request) {
	ch := c.s.challengeOf(cookieValue(r, signInCookie))
	switch {
	case ch == nil:
		writeJSON(w, http.StatusOK, map[string]string{"state": "expired"})
	case ch.token != "":
		writeJSON(w, http.StatusOK, map[string]string{"state": "signed", "link": "/console/login/" + ch.token})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"state": "waiting"})
	}
}

// redeem follows the one-time link: only the browser that was shown the
// challenge (its sign-in cookie) gets the session, once.
func (c *Console) redeem(w http.ResponseWriter, r *http.Request) {
	x, err := c.s.redeem(r.PathValue("token"), cookieValue(r, signInCookie))
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	setCookie(w, signInCookie, "", -1)
	setCookie(w, sessionCookie, x.id, c.o.SessionTTL)
	c.o.Logger.InfoContext(r.Context(), "console session", "role", x.actor.Identity.Role, "keyid", x.actor.Identity.KeyID)
	_ = c.flashTo(w, r, x, "/console/exchanges", "flash.signedIn", c.view(r, nil, "", "", nil).RoleName(x.actor.Identity.Role))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, x *session) error {
	c.s.end(x.id)
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	return nil
}
