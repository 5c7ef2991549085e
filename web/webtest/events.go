package webtest

import (
	"net/http"

	"github.com/urbanbrain/urbanbrain/auth"
)

// Post sends events to POST /api/v1/events with an ingest token and fails unless every one is
// accepted.
func (c *City) Post(events ...map[string]any) {
	c.t.Helper()
	token := c.Token(auth.Claims{Subject: "test-gateway", Role: auth.RoleIngest})
	for _, ev := range events {
		if code := c.Do(http.MethodPost, "/api/v1/events", token, ev, nil); code != http.StatusAccepted && code != http.StatusOK {
			c.t.Fatalf("POST event %v: %d", ev["id"], code)
		}
	}
}
