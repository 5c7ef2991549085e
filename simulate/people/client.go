package people

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

// Issuer signs tokens (auth.Issuer does). The simulator asks for one token per person and a
// new one before the old one runs out.
type Issuer interface {
	Issue(c auth.Claims, ttl time.Duration) (string, error)
}

// tokenTTL is the life of a simulated person's token (less where the role allows less).
const tokenTTL = 4 * time.Hour

// identity is a person as the API knows them: the claims of their token.
type identity struct {
	claims auth.Claims

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// apiError is an answer the API refused, with the code of docs/api.md's catalogue.
type apiError struct {
	Status int
	Code   string `json:"code"`
	Msg    string `json:"error"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg) }

// client sends people's requests: one shared connection pool, at most MaxInFlight requests at
// once, and 429 answers waited out as their Retry-After says.
type client struct {
	base   string
	hc     *http.Client
	issuer Issuer
	sem    chan struct{}
	now    func() time.Time

	limited func() // counts 429 answers
}

// token is the person's current token, renewed when a quarter of its life is left.
func (c *client) token(id *identity) (string, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	now := c.now()
	if id.token != "" && now.Before(id.renewAt) {
		return id.token, nil
	}
	ttl := min(tokenTTL, auth.MaxTTL(id.claims.Role))
	tok, err := c.issuer.Issue(id.claims, ttl)
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", id.claims.Subject, err)
	}
	id.token, id.renewAt = tok, now.Add(ttl*3/4)
	return tok, nil
}

// maxRateLimitWaits bounds how often one request waits out a 429 before it gives up.
const maxRateLimitWaits = 5

// do sends one request as id and decodes a 2xx JSON answer into out. A refusal is *apiError.
func (c *client) do(ctx context.Context, id *identity, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		wait, err := c.once(ctx, id, method, path, payload, out)
		if wait == 0 || attempt >= maxRateLimitWaits {
			return err
		}
		if c.limited != nil {
			c.limited()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// once sends the request once. A 429 returns how long to wait before trying again.
func (c *client) once(ctx context.Context, id *identity, method, path string, payload []byte, out any) (time.Duration, error) {
	tok, err := c.token(id)
	if err != nil {
		return 0, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-c.sem }()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return retryAfter(resp.Header.Get("Retry-After")), &apiError{Status: resp.StatusCode, Code: "rate_limited"}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, e)
		return 0, e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return 0, nil
}

// retryAfter reads a Retry-After of delta-seconds; anything else waits a second.
func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return time.Second
}

// refused reports whether err is the API saying no (the state moved on, someone else acted):
// the person drops the step and looks again later, as a person would.
func refused(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests
}
