package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Local accounts: people sign in to the pages with a username and a password (the API keeps
// bearer tokens). The identity seam is small on purpose: a sign-in ends in Claims, and a
// Sessions cookie carries them; a Directory is one way to get there (passwords checked here),
// an OIDC provider would be another (its callback makes the Claims from the ID token's
// groups), and nothing after the sign-in knows which one it was. Directory.Check is what a
// session asks on every request: is the account still there, enabled, at the same epoch.

// Account is a local account as it is stored and shared between instances (city.accounts,
// keyed by username, the latest Version of each kept). The password is only ever held as
// an argon2id hash.
type Account struct {
	Username     string    `json:"username"`
	Role         Role      `json:"role"`
	District     string    `json:"district,omitempty"`
	Grids        []string  `json:"grids,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"` // empty in every answer (View)
	Disabled     bool      `json:"disabled,omitempty"`
	Epoch        int64     `json:"epoch"`   // moves on at every reset and disable: every session ends
	Version      int64     `json:"version"` // one per change
	By           string    `json:"by"`      // who made this version
	At           time.Time `json:"at"`
}

// Claims is what a session of a signs in as.
func (a Account) Claims() Claims {
	return Claims{Subject: a.Username, Role: a.Role, District: a.District, Grids: slices.Clone(a.Grids), Epoch: a.Epoch}
}

// View is the account without its hash, for lists and answers.
func (a Account) View() Account {
	a.PasswordHash = ""
	return a
}

// Sign-in errors: the message never says which of username and password was wrong.
var (
	ErrBadCredentials = errors.New("wrong username or password")
	ErrLocked         = errors.New("too many failed sign-ins; this account is locked for a while")
	ErrSessionEnded   = errors.New("the session has ended: the account was disabled, reset or removed; sign in again")
)

// Lockout: after LockoutFailures failed sign-ins within LockoutWindow an account is locked
// for LockoutWindow, whether it exists or not (so a lock does not tell that it exists).
const (
	LockoutFailures = 5
	LockoutWindow   = 15 * time.Minute
)

// MinPasswordLen is the shortest password an account may have, in characters.
const MinPasswordLen = 10

// CheckPasswordPolicy says why password is not acceptable for username, or nil.
func CheckPasswordPolicy(username, password string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLen)
	case strings.EqualFold(password, username):
		return errors.New("the password may not be the username")
	case len(password) > 1024:
		return errors.New("the password is longer than 1024 bytes")
	}
	return nil
}

// The argon2id parameters (RFC 9106's second recommended option, with less memory: the server
// signs a command centre's staff in, not a crowd).
const (
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword returns password's argon2id hash in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash (in constant time for a given hash).
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil || mem == 0 || iters == 0 || threads == 0 ||
		mem > 1<<20 || iters > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, iters, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is compared against when the username is unknown, so an unknown name costs the
// same time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("urbanbrain: no such account")
	return h
})

// Directory holds the local accounts of the city and checks sign-ins. It is safe for
// concurrent use.
type Directory struct {
	mu       sync.Mutex
	accounts map[string]Account
	failures map[string][]time.Time // username → recent failed sign-ins
	now      func() time.Time
}

// NewDirectory returns an empty directory on clock now (time.Now if nil).
func NewDirectory(now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{accounts: map[string]Account{}, failures: map[string][]time.Time{}, now: now}
}

// Apply takes a version of an account (from city.accounts); an older or equal version than
// the one held is ignored, so records can be applied again in any order.
func (d *Directory) Apply(a Account) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.accounts[a.Username]; ok && cur.Version >= a.Version {
		return false
	}
	d.accounts[a.Username] = a
	return true
}

// Get returns the account named username.
func (d *Directory) Get(username string) (Account, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[username]
	return a, ok
}

// List returns every account, by username.
func (d *Directory) List() []Account {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Account, 0, len(d.accounts))
	for _, a := range d.accounts {
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y Account) int { return strings.Compare(x.Username, y.Username) })
	return out
}

// Authenticate checks a sign-in and returns the claims of a new session. Failures return
// ErrBadCredentials (also for a disabled or unknown account) or ErrLocked.
func (d *Directory) Authenticate(username, password string) (Claims, error) {
	now := d.now()
	d.mu.Lock()
	recent := d.recentFailures(username, now)
	a, ok := d.accounts[username]
	d.mu.Unlock()
	if len(recent) >= LockoutFailures {
		return Claims{}, ErrLocked
	}
	hash := dummyHash()
	if ok {
		hash = a.PasswordHash
	}
	// The hash is compared whatever the account's state, so every failure costs the same.
	match := CheckPassword(hash, password)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok || !match || a.Disabled {
		d.failures[username] = append(d.recentFailures(username, now), now)
		return Claims{}, ErrBadCredentials
	}
	delete(d.failures, username)
	return a.Claims(), nil
}

// recentFailures are username's failures within the lockout window; d.mu is held.
func (d *Directory) recentFailures(username string, now time.Time) []time.Time {
	fs := d.failures[username]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) > LockoutWindow {
		i++
	}
	if i == len(fs) {
		delete(d.failures, username)
		return nil
	}
	fs = fs[i:]
	d.failures[username] = fs
	return fs
}

// Check is the question a session asks on every request: its account still exists, is
// enabled, and has not moved on to another epoch (reset or disabled since the sign-in). Its
// role and scope are the account's now, not as they were at sign-in.
func (d *Directory) Check(c Claims) (Claims, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[c.Subject]
	if !ok || a.Disabled || a.Epoch != c.Epoch {
		return Claims{}, ErrSessionEnded
	}
	now := a.Claims()
	now.ID = c.ID
	return now, nil
}
