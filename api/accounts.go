package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

// Local accounts and the pages' sign-in (docs/api.md, "Accounts and sign-in"). The accounts
// live on city.accounts (compacted, signed like every internal record), which every instance
// reads on start and follows into its directory (app/accounts.go), so a sign-in and a session
// work on any node. An admin creates, disables, enables and resets accounts over these routes
// (the `urbanbrain user` command is a client of them); people sign in with POST
// /api/v1/session and get an HttpOnly session cookie (auth.Sessions) that every API route and
// websocket accepts besides bearer tokens, with a CSRF header on requests that change something.

// Error codes of sign-in and accounts.
const (
	CodeLocked        = "locked"         // 429: too many failed sign-ins for this username
	CodeAccountExists = "account_exists" // 409
)

// accountRoutes are the sign-in and account routes; Routes adds them with the API.
func (s *Server) accountRoutes() []Route {
	need := s.need
	return []Route{
		{"POST /api/v1/session", public(http.HandlerFunc(s.signIn))},
		{"GET /api/v1/session", need(auth.PermAccount, s.session)},
		{"DELETE /api/v1/session", need(auth.PermAccount, s.signOut)},
		{"GET /api/v1/users", need(auth.PermUsers, s.listUsers)},
		{"POST /api/v1/users", need(auth.PermUsers, s.createUser)},
		{"POST /api/v1/users/{name}/disable", need(auth.PermUsers, s.changeUser(userDisable))},
		{"POST /api/v1/users/{name}/enable", need(auth.PermUsers, s.changeUser(userEnable))},
		{"POST /api/v1/users/{name}/reset", need(auth.PermUsers, s.changeUser(userReset))},
	}
}

// signIn answers POST /api/v1/session {"username", "password"}: 200 with the account and the
// CSRF token, the session in an HttpOnly cookie; 401 for a wrong name or password (which one
// is not said), 429 locked after repeated failures. Every attempt is audited.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.signIns.allow(r) {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusTooManyRequests, auth.CodeRateLimited, "too many sign-in attempts from this address; wait a moment")
		return
	}
	var req signInRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := s.accounts.Authenticate(req.Username, req.Password)
	rec := event.AuditRecord{ID: "sign-in:" + uuid.NewString(), Kind: event.AuditSignIn, Action: "sign_in", Target: req.Username,
		Actor: event.Actor{Subject: req.Username, Role: c.Role, District: c.District, Grids: c.Grids}, OK: err == nil, At: time.Now().UTC()}
	if err != nil {
		rec.Error = err.Error()
	}
	if aerr := s.emit(r.Context(), event.Outputs{{Key: event.UnknownStreet, ID: rec.ID, Time: rec.At, Data: rec}}); aerr != nil {
		s.log.Error("sign-in not audited; refused", zap.Error(aerr))
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "sign-in cannot be recorded now; try again")
		return
	}
	switch {
	case errors.Is(err, auth.ErrLocked):
		w.Header().Set("Retry-After", fmt.Sprint(int(auth.LockoutWindow.Seconds())))
		writeError(w, http.StatusTooManyRequests, CodeLocked, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusUnauthorized, auth.CodeUnauthenticated, err.Error())
		return
	}
	csrf, err := s.sessions.Start(w, c)
	if err != nil {
		s.internalError(w, "start session", err)
		return
	}
	acc, _ := s.accounts.Get(c.Subject)
	writeJSON(w, http.StatusOK, SignInAnswer{Account: acc.View(), CSRF: csrf})
}

// session answers GET /api/v1/session: who the caller is, and for a signed-in session its
// CSRF token (a page reloaded reads it here).
func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	c, _ := auth.FromContext(r.Context())
	out := SessionAnswer{Subject: c.Subject, Role: c.Role, District: c.District, Grids: c.Grids,
		Permissions: auth.Permissions(c.Role)}
	if c.Epoch != 0 {
		out.CSRF = s.sessions.CSRF(c)
	}
	writeJSON(w, http.StatusOK, out)
}

// signOut answers DELETE /api/v1/session: the cookies are cleared.
func (s *Server) signOut(w http.ResponseWriter, _ *http.Request) {
	s.sessions.End(w)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listUsers(w http.ResponseWriter, _ *http.Request) {
	list := s.accounts.List()
	for i := range list {
		list[i] = list[i].View()
	}
	writeJSON(w, http.StatusOK, UserList{Users: list, Count: len(list)})
}

// usernamePattern: letters, digits, '.', '_' and '-'. Upper case is allowed so that a grid
// worker's account is their roster id (W-990101001001-01-A): dispatch assigns tasks to that id,
// and "my tasks" and the worker feed are the tasks assigned to the signed-in subject.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$`)

// createUser answers POST /api/v1/users {"username", "role", "district", "grids", "password"}.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if !decodeBody(w, r, &req) {
		return
	}
	role, err := auth.ParseRole(req.Role)
	if rw, onRoster := s.city.Worker(req.Username); err == nil && role == auth.RoleWorker && onRoster && len(req.Grids) == 0 {
		req.Grids = rw.Grids // a roster worker works the roster's grids unless told otherwise
	}
	switch {
	case !usernamePattern.MatchString(req.Username):
		err = fmt.Errorf("username %q: 2 to 64 of a-z, A-Z, 0-9, '.', '_' and '-', starting with a letter or digit", req.Username)
	case err != nil:
	case role == auth.RoleWorker && len(req.Grids) == 0:
		err = errors.New("a worker needs the grids they work (grids)")
	case role != auth.RoleWorker && len(req.Grids) > 0:
		err = errors.New("only a worker has grids")
	case req.District != "" && !slices.ContainsFunc(s.city.Districts(), func(d city.Region) bool { return d.Code == req.District }):
		err = fmt.Errorf("no district %q in this city", req.District)
	default:
		err = auth.CheckPasswordPolicy(req.Username, req.Password)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
		return
	}
	for _, g := range req.Grids {
		if _, ok := s.city.Grid(g); !ok {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest, "no grid "+g+" in this city")
			return
		}
	}
	if _, ok := s.accounts.Get(req.Username); ok {
		writeError(w, http.StatusConflict, CodeAccountExists, "account "+req.Username+" exists; disable, enable or reset it")
		return
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		s.internalError(w, "hash password", err)
		return
	}
	s.saveAccount(w, r, auth.Account{Username: req.Username, Role: role, District: req.District, Grids: req.Grids,
		PasswordHash: hash, Epoch: 1, Version: 1}, "create", http.StatusCreated)
}

// signInRequest is the body of POST /api/v1/session.
type signInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// createUserRequest is the body of POST /api/v1/users.
type createUserRequest struct {
	Username string   `json:"username"`
	Role     string   `json:"role"`
	District string   `json:"district,omitempty"`
	Grids    []string `json:"grids,omitempty"`
	Password string   `json:"password"`
}

// resetRequest is the body of POST /api/v1/users/{name}/reset.
type resetRequest struct {
	Password string `json:"password"`
}

type userChange int

const (
	userDisable userChange = iota
	userEnable
	userReset
)

// changeUser answers POST /api/v1/users/{name}/disable, /enable and /reset {"password"}.
// Disabling and resetting end every session of the account.
func (s *Server) changeUser(ch userChange) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		acc, ok := s.accounts.Get(r.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, CodeNotFound, "no account "+r.PathValue("name"))
			return
		}
		action := ""
		switch ch {
		case userDisable:
			action, acc.Disabled = "disable", true
			acc.Epoch++
		case userEnable:
			action, acc.Disabled = "enable", false
		case userReset:
			var req resetRequest
			if !decodeBody(w, r, &req) {
				return
			}
			if err := auth.CheckPasswordPolicy(acc.Username, req.Password); err != nil {
				writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
				return
			}
			hash, err := auth.HashPassword(req.Password)
			if err != nil {
				s.internalError(w, "hash password", err)
				return
			}
			action, acc.PasswordHash = "reset", hash
			acc.Epoch++
		}
		acc.Version++
		s.saveAccount(w, r, acc, action, http.StatusOK)
	}
}

// saveAccount writes a version of an account and its audit record, applies it here, and
// answers with the account (without its hash).
func (s *Server) saveAccount(w http.ResponseWriter, r *http.Request, acc auth.Account, action string, status int) {
	claims, _ := auth.FromContext(r.Context())
	acc.By, acc.At = claims.Subject, time.Now().UTC()
	rec := event.AuditRecord{ID: fmt.Sprintf("account:%s@%d", acc.Username, acc.Version), Kind: event.AuditAccount,
		Action: action, Target: acc.Username, OK: true, At: acc.At,
		Actor: event.Actor{Subject: claims.Subject, Role: claims.Role, District: claims.District}}
	err := s.emit(r.Context(), event.Outputs{
		{Key: acc.Username, ID: rec.ID, Time: acc.At, Data: acc},
		{Key: event.UnknownStreet, ID: rec.ID, Time: acc.At, Data: rec},
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "account not saved: "+err.Error())
		return
	}
	s.accounts.Apply(acc)
	s.log.Info("account changed", zap.String("account", acc.Username), zap.String("action", action), zap.String("by", claims.Subject))
	writeJSON(w, status, acc.View())
}

// ipLimiter is a token bucket per client address for the sign-in route, which has no token to
// key a limit by; the per-username lockout is the other half.
type ipLimiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newIPLimiter(every rate.Limit, burst int) *ipLimiter {
	return &ipLimiter{every: every, burst: burst, buckets: map[string]*rate.Limiter{}}
}

func (l *ipLimiter) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.swept) > 10*time.Minute { // full buckets change nothing: forget them
		for k, b := range l.buckets {
			if b.Tokens() >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[host]
	if b == nil {
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets[host] = b
	}
	return b.Allow()
}
