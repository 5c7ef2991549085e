package api

import (
	"net/http"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/lang"
)

// A rule's scope is the city (district empty) or one district. Who may do what with it is the
// token's scope, by the one policy auth.Claims.CanSee applies to everything else:
//
//   - write (create, update, delete, enable, disable): the token's scope covers the rule's —
//     an admin or a city-wide author any rule, a district author only their district's rules
//     (an update also needs the new text's district covered, so a rule cannot be moved out);
//   - read (list, get, versions, diff, and a dry run or backtest of it): the rules the author
//     may write plus every city rule, read-only; other districts' rules look like rules that
//     do not exist.

// canWriteRule reports whether c's scope covers a rule of district d ("" for the city).
func canWriteRule(c auth.Claims, d string) bool {
	return c.CanSee(event.Area{District: d})
}

// canReadRule reports whether c may see a rule of district d: a city rule, or one c may write.
func canReadRule(c auth.Claims, d string) bool {
	return d == "" || canWriteRule(c, d)
}

// ruleDistrict is the district of rule id's newest version (deleted or not), and whether the
// rule has any version.
func (s *Server) ruleDistrict(id string) (string, bool) {
	if _, r, ok := s.catalog.Get(id); ok {
		return r.District, true
	}
	v, ok := s.catalog.Head(id)
	if !ok {
		return "", false
	}
	if r, err := v.Rule(); err == nil {
		return r.District, true
	}
	return "", true
}

// readableRule reports whether the caller may see rule id; when not, it has answered 404,
// as for a rule that does not exist. A rule with no version is left to the handler.
func (s *Server) readableRule(w http.ResponseWriter, r *http.Request, id string) bool {
	claims, _ := auth.FromContext(r.Context())
	d, ok := s.ruleDistrict(id)
	if ok && !canReadRule(claims, d) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return false
	}
	return true
}

// writableRule reports whether the caller may change rule id as it is now; when not, it has
// answered 403 forbidden (or 404 for a rule they may not even see).
func (s *Server) writableRule(w http.ResponseWriter, r *http.Request, id string) bool {
	claims, _ := auth.FromContext(r.Context())
	d, ok := s.ruleDistrict(id)
	switch {
	case !ok:
		return true // the catalog answers 404
	case !canReadRule(claims, d):
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return false
	case !canWriteRule(claims, d):
		writeError(w, http.StatusForbidden, CodeForbidden, scopeRefusal(claims, d))
		return false
	}
	return true
}

// writableText reports whether the caller may save rule text: its district must be covered.
// Text that does not parse is left to the catalog, which answers with positioned errors.
func (s *Server) writableText(w http.ResponseWriter, r *http.Request, text []byte) bool {
	claims, _ := auth.FromContext(r.Context())
	rs, err := lang.Parse("body", text)
	if err != nil || len(rs) != 1 {
		return true
	}
	if d := rs[0].District; !canWriteRule(claims, d) {
		writeError(w, http.StatusForbidden, CodeForbidden, scopeRefusal(claims, d))
		return false
	}
	return true
}

func scopeRefusal(c auth.Claims, d string) string {
	scope := "the whole city"
	if d != "" {
		scope = "district " + d
	}
	if c.District != "" {
		return "your token is scoped to district " + c.District + ": you may write only its rules (district: " +
			c.District + "), and this rule is for " + scope
	}
	return "your token does not cover a rule for " + scope
}
