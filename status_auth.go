package observe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Access to the status page and its APIs. They are protected like
// /debug/pprof (a bearer token when OBSERVE_ADMIN_TOKEN is set, else
// loopback clients only), and a browser can sign in instead of sending a
// header: the sign-in form takes the token and sets a session cookie,
// HttpOnly and SameSite=Strict, whose value is an HMAC keyed by the token
// (never the token; changing the token ends every session). Calls that
// change state (PUT /loglevel) made with the cookie, or from a browser at
// all, must carry the page's CSRF token in X-CSRF-Token.

const (
	sessionCookie = "observe_session"
	csrfHeader    = "X-CSRF-Token"
)

// statusAuth holds the keys; built once per Observer.
type statusAuth struct {
	token   string
	session string // the cookie value that signs a browser in ("" without a token)
	csrfKey []byte // random, per process
}

func newStatusAuth(token string) *statusAuth {
	a := &statusAuth{token: token, csrfKey: make([]byte, 32)}
	_, _ = rand.Read(a.csrfKey)
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("observe status session v1"))
		a.session = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return a
}

// csrf is the token the page sends back on state-changing calls: an HMAC of
// the session (or of nothing, without a token) under a per-process key.
func (a *statusAuth) csrf() string {
	m := hmac.New(sha256.New, a.csrfKey)
	m.Write([]byte("csrf|" + a.session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *statusAuth) csrfValid(r *http.Request) bool {
	got := r.Header.Get(csrfHeader)
	want := a.csrf()
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (a *statusAuth) cookieValid(r *http.Request) bool {
	if a.session == "" {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(a.session)) == 1
}

// fromBrowser reports whether a browser sent r: browsers send Origin on
// every PUT and POST and Sec-Fetch-Site on every request; curl and other
// programs send neither.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// hostIsLocal reports whether the Host header names this machine as a
// browser on it would: an IP literal, localhost or *.localhost. Without a
// token, a loopback request naming another host is refused: it is what a
// DNS-rebinding page in the user's browser would send.
func hostIsLocal(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// access decides whether r may read the status page and its APIs.
// It returns 0 when it may, else the status to answer.
func (o *Observer) statusAccess(r *http.Request) int {
	a := o.statusAuth
	if a.token != "" {
		if bearerMatches(r.Header.Get("Authorization"), a.token) || a.cookieValid(r) {
			return 0
		}
		return http.StatusUnauthorized
	}
	if !isLoopback(r.RemoteAddr) || !hostIsLocal(r.Host) {
		return http.StatusForbidden
	}
	return 0
}

// protectStatus guards the page and its read-only APIs. Without access,
// the page answers with the sign-in form (401) and the APIs with a JSON
// error.
func (o *Observer) protectStatus(page bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		switch o.statusAccess(r) {
		case 0:
			next.ServeHTTP(w, r)
		case http.StatusUnauthorized:
			if page {
				o.serveSignIn(w, r, http.StatusUnauthorized, "")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="observe"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token (or the status page's session cookie) is required"})
		default:
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "protected endpoint: set OBSERVE_ADMIN_TOKEN to allow remote access; without it only loopback clients naming localhost or an IP address are allowed"})
		}
	})
}

// protectChange guards state-changing admin calls (PUT /loglevel): as
// protect, plus the session cookie, and a CSRF token whenever the
// credential is one a browser sends by itself (the cookie, or none at all
// from loopback).
func (o *Observer) protectChange(next http.Handler) http.Handler {
	a := o.statusAuth
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case a.token != "" && bearerMatches(r.Header.Get("Authorization"), a.token):
		case a.token != "" && a.cookieValid(r):
			if !a.csrfValid(r) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or invalid " + csrfHeader + " (reload the status page)"})
				return
			}
		case a.token != "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="observe"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
			return
		default:
			if !isLoopback(r.RemoteAddr) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "protected endpoint: set OBSERVE_ADMIN_TOKEN to allow remote access; without it only loopback clients are allowed"})
				return
			}
			if fromBrowser(r) && !a.csrfValid(r) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "a browser's change needs " + csrfHeader + " from the status page"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveSignInPost checks the submitted token and sets the session cookie.
func (o *Observer) serveSignInPost(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	a := o.statusAuth
	if a.token == "" {
		seeOther(w)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin sign-in refused"})
			return
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		o.serveSignIn(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	if !bearerMatches("Bearer "+r.PostForm.Get("token"), a.token) {
		o.serveSignIn(w, r, http.StatusUnauthorized, "That token is not the admin token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    a.session,
		Path:     mountPrefix(r) + "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	seeOther(w)
}

// serveSignOut clears the session cookie.
func (o *Observer) serveSignOut(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: mountPrefix(r) + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	seeOther(w)
}

// mountPrefix is the path the admin handler is mounted under ("" at the
// root): what http.StripPrefix removed from the request's path.
func mountPrefix(r *http.Request) string {
	orig := r.RequestURI
	if i := strings.IndexByte(orig, '?'); i >= 0 {
		orig = orig[:i]
	}
	if u, err := url.PathUnescape(orig); err == nil {
		orig = u
	}
	if p, ok := strings.CutSuffix(orig, r.URL.Path); ok && !strings.Contains(p, "//") {
		return strings.TrimSuffix(p, "/")
	}
	return ""
}

// securityHeaders: nothing but our own assets, never framed, no referrer.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// seeOther sends the browser back to the page. Not http.Redirect: it
// resolves "./" against the path the handler sees, which lacks the mount
// prefix; the browser resolves it against the URL it asked for.
func seeOther(w http.ResponseWriter) {
	w.Header().Set("Location", "./")
	w.WriteHeader(http.StatusSeeOther)
}
