package authoring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/event"

	"github.com/aymanbagabas/go-udiff"
)

// Rules as data. Every change of a rule — created, updated, enabled, disabled, deleted — is a
// new RuleVersion, published to the compacted city.rules topic under the key
// "<rule id>@<version>". Every version has its own key, so compaction never removes one: the
// topic is the rule's whole history, with who changed what and when, and compaction only
// means it is never aged out. Each instance reads the topic from the start into a Catalog and
// follows it; the rules it runs are the catalog's current versions. Applying a version is
// idempotent and order-independent (the highest version of a rule is its current one), so a
// version read twice, or two versions read out of order, lead to the same rules everywhere.

// Actions of a rule version.
const (
	ActionSeed    = "seed" // from the rules directory on start
	ActionCreate  = "create"
	ActionUpdate  = "update"
	ActionEnable  = "enable"
	ActionDisable = "disable"
	ActionDelete  = "delete"
)

// RuleVersion is one version of a rule, as it travels on city.rules.
type RuleVersion struct {
	RuleID  string    `json:"rule_id"`
	Version int       `json:"version"`
	Action  string    `json:"action"`
	Author  string    `json:"author"` // the token subject of who saved it, or "rules-dir"
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
	Deleted bool      `json:"deleted,omitempty"`
	// Source is the rule as YAML, with its version and enabled flag written in; empty when
	// the version deletes the rule.
	Source string `json:"source,omitempty"`
}

// Key is the record key on city.rules.
func (v RuleVersion) Key() string { return v.RuleID + "@" + strconv.Itoa(v.Version) }

// Encode returns the version as a CloudEvent for city.rules.
func (v RuleVersion) Encode() ([]byte, error) {
	return event.Encode(event.TypeRuleVersion, v.Key(), v.At, v)
}

// DecodeVersion reads a record of city.rules.
func DecodeVersion(b []byte) (RuleVersion, error) {
	var v RuleVersion
	if _, err := event.Decode(b, event.TypeRuleVersion, &v); err != nil {
		return RuleVersion{}, err
	}
	if v.RuleID == "" || v.Version < 1 {
		return RuleVersion{}, fmt.Errorf("rule version %q@%d: no rule id or version", v.RuleID, v.Version)
	}
	return v, nil
}

// Rule compiles the version's source.
func (v RuleVersion) Rule() (lang.Rule, error) {
	if v.Deleted {
		return lang.Rule{}, fmt.Errorf("rule %s version %d deletes the rule", v.RuleID, v.Version)
	}
	rs, err := lang.Parse(v.Key(), []byte(v.Source))
	if err != nil {
		return lang.Rule{}, err
	}
	if len(rs) != 1 {
		return lang.Rule{}, fmt.Errorf("rule %s version %d holds %d rules", v.RuleID, v.Version, len(rs))
	}
	r := rs[0]
	if r.ID != v.RuleID || r.Version != v.Version {
		return lang.Rule{}, fmt.Errorf("rule %s version %d holds rule %s version %d", v.RuleID, v.Version, r.ID, r.Version)
	}
	return r, nil
}

// Errors of authoring.
var (
	ErrRuleNotFound    = errors.New("no such rule")
	ErrRuleExists      = errors.New("a rule with this id exists")
	ErrVersionConflict = errors.New("the rule has changed since the version you edited")
	ErrNotOneRule      = errors.New("the text must hold exactly one rule")
)

// Catalog is every version of every rule an instance has read from city.rules. It is safe for
// concurrent use.
type Catalog struct {
	mu       sync.Mutex
	rules    map[string]*history
	applied  chan struct{} // closed and replaced on every change, for Wait
	onChange func([]lang.Rule)
}

// OnChange sets a function called with the current rules whenever they change, before any
// Wait for the version that changed them returns: the engine's SetRules, so that an API call
// that waits for its version answers once the rules run.
func (c *Catalog) OnChange(fn func(current []lang.Rule)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onChange = fn
}

type history struct {
	versions []RuleVersion      // by version, ascending
	rules    map[int]*lang.Rule // compiled, for versions that compile
	errs     map[int]error      // for versions that do not (a newer instance's syntax, say)
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{rules: make(map[string]*history), applied: make(chan struct{})}
}

// Apply adds a version. It reports whether the current rules changed; a version that does
// not compile on this instance is kept in the history with its error (VersionError) and
// the rule's last good version stays current.
func (c *Catalog) Apply(v RuleVersion) (changed bool, err error) {
	var r *lang.Rule
	if !v.Deleted {
		rule, perr := v.Rule()
		if perr != nil {
			err = perr
		} else {
			r = &rule
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.rules[v.RuleID]
	if h == nil {
		h = &history{rules: make(map[int]*lang.Rule), errs: make(map[int]error)}
		c.rules[v.RuleID] = h
	}
	before := h.current()
	i := sort.Search(len(h.versions), func(i int) bool { return h.versions[i].Version >= v.Version })
	switch {
	case i < len(h.versions) && h.versions[i].Version == v.Version:
		if same(h.versions[i], v) {
			return false, err // seen already
		}
		h.versions[i] = v // a later write of the same version wins, as compaction would decide
	default:
		h.versions = slices.Insert(h.versions, i, v)
	}
	delete(h.rules, v.Version)
	delete(h.errs, v.Version)
	if r != nil {
		h.rules[v.Version] = r
	} else if err != nil {
		h.errs[v.Version] = err
	}
	changed = h.current() != before
	if changed && c.onChange != nil {
		c.onChange(c.currentLocked())
	}
	close(c.applied)
	c.applied = make(chan struct{})
	return changed, err
}

// current is the rule's newest version when it is a compiled rule, nil when that newest
// version deletes it; a newest version that does not compile leaves the one before current.
func (h *history) current() *lang.Rule {
	for i := len(h.versions) - 1; i >= 0; i-- {
		v := h.versions[i]
		if v.Deleted {
			return nil
		}
		if r := h.rules[v.Version]; r != nil {
			return r
		}
	}
	return nil
}

func same(a, b RuleVersion) bool {
	return a.RuleID == b.RuleID && a.Version == b.Version && a.Action == b.Action && a.Author == b.Author &&
		a.At.Equal(b.At) && a.Comment == b.Comment && a.Deleted == b.Deleted && a.Source == b.Source
}

func (h *history) head() RuleVersion { return h.versions[len(h.versions)-1] }

// Current returns the rules to run, by id.
func (c *Catalog) Current() []lang.Rule {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.currentLocked()
}

func (c *Catalog) currentLocked() []lang.Rule {
	out := make([]lang.Rule, 0, len(c.rules))
	for _, id := range slices.Sorted(maps.Keys(c.rules)) {
		if r := c.rules[id].current(); r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// Get returns a rule's current version and its compiled rule.
func (c *Catalog) Get(id string) (RuleVersion, lang.Rule, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.rules[id]
	if h == nil {
		return RuleVersion{}, lang.Rule{}, false
	}
	r := h.current()
	if r == nil {
		return RuleVersion{}, lang.Rule{}, false
	}
	for _, v := range h.versions {
		if v.Version == r.Version {
			return v, *r, true
		}
	}
	return RuleVersion{}, lang.Rule{}, false
}

// Head returns a rule's newest version, whatever it is (a deletion, one that does not compile).
func (c *Catalog) Head(id string) (RuleVersion, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.rules[id]
	if h == nil {
		return RuleVersion{}, false
	}
	return h.head(), true
}

// History returns every version of a rule, oldest first.
func (c *Catalog) History(id string) []RuleVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.rules[id]; h != nil {
		return slices.Clone(h.versions)
	}
	return nil
}

// Version returns one version of a rule.
func (c *Catalog) Version(id string, version int) (RuleVersion, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.rules[id]
	if h == nil {
		return RuleVersion{}, false
	}
	for _, v := range h.versions {
		if v.Version == version {
			return v, true
		}
	}
	return RuleVersion{}, false
}

// VersionErrors returns, by "<id>@<version>", the versions that did not compile here.
func (c *Catalog) VersionErrors() map[string]error {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]error)
	for id, h := range c.rules {
		for v, err := range h.errs {
			out[id+"@"+strconv.Itoa(v)] = err
		}
	}
	return out
}

// Wait blocks until the catalog holds the given version of a rule, or ctx ends.
func (c *Catalog) Wait(ctx context.Context, id string, version int) error {
	for {
		c.mu.Lock()
		ch := c.applied
		h := c.rules[id]
		found := h != nil && slices.ContainsFunc(h.versions, func(v RuleVersion) bool { return v.Version == version })
		c.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Seed returns the versions to publish so that the rules of the rules directory are on the
// topic: a rule the catalog does not have, or has only at a lower version. A rule the topic
// holds at the same or a higher version — edited or deleted through the API — is left as it
// is: the topic is the system of record, and the directory only seeds it.
func (c *Catalog) Seed(rules []lang.Rule, at time.Time) []RuleVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []RuleVersion
	for _, r := range rules {
		if h := c.rules[r.ID]; h != nil && h.head().Version >= r.Version {
			continue
		}
		src := r.Source
		if src == "" {
			continue // not made by Parse
		}
		out = append(out, RuleVersion{RuleID: r.ID, Version: r.Version, Action: ActionSeed, Author: SeedAuthor,
			At: at.UTC(), Comment: "from " + r.Origin.File, Source: src})
	}
	return out
}

// SeedAuthor is the author of versions seeded from the rules directory.
const SeedAuthor = "rules-dir"

// Create prepares version 1 (or the next version after a deleted one) of a new rule from
// its text. The text's own version, if any, is replaced.
func (c *Catalog) Create(src []byte, author, comment string, at time.Time) (RuleVersion, error) {
	r, err := parseOne(src)
	if err != nil {
		return RuleVersion{}, err
	}
	version := 1
	if head, ok := c.Head(r.ID); ok {
		if !head.Deleted {
			return RuleVersion{}, fmt.Errorf("rule %s: %w (version %d)", r.ID, ErrRuleExists, head.Version)
		}
		version = head.Version + 1
	}
	return makeVersion(src, r.ID, version, nil, ActionCreate, author, comment, at)
}

// Update prepares the next version of a rule from new text. base, when not zero, is the
// version the author edited: if the rule has moved on since, the update is refused.
func (c *Catalog) Update(id string, src []byte, base int, author, comment string, at time.Time) (RuleVersion, error) {
	r, err := parseOne(src)
	if err != nil {
		return RuleVersion{}, err
	}
	if r.ID != id {
		return RuleVersion{}, &lang.ValidationError{Pos: lang.Position{File: "body", Line: r.Origin.Line}, RuleID: r.ID, Field: "id",
			Msg: fmt.Sprintf("the text is rule %q, not %q (an id cannot change; create a new rule)", r.ID, id)}
	}
	head, err := c.live(id, base)
	if err != nil {
		return RuleVersion{}, err
	}
	return makeVersion(src, id, head.Version+1, nil, ActionUpdate, author, comment, at)
}

// SetEnabled prepares a version that enables or disables a rule. It returns the current
// version unchanged (and false) when the rule already is in that state.
func (c *Catalog) SetEnabled(id string, enabled bool, base int, author, comment string, at time.Time) (RuleVersion, bool, error) {
	head, err := c.live(id, base)
	if err != nil {
		return RuleVersion{}, false, err
	}
	_, cur, ok := c.Get(id)
	if ok && cur.Version == head.Version && cur.Enabled == enabled {
		return head, false, nil
	}
	action := ActionDisable
	if enabled {
		action = ActionEnable
	}
	v, err := makeVersion([]byte(head.Source), id, head.Version+1, &enabled, action, author, comment, at)
	return v, err == nil, err
}

// Delete prepares a version that deletes a rule. Its history stays; the id may be created
// again, continuing the version numbers.
func (c *Catalog) Delete(id string, base int, author, comment string, at time.Time) (RuleVersion, error) {
	head, err := c.live(id, base)
	if err != nil {
		return RuleVersion{}, err
	}
	return RuleVersion{RuleID: id, Version: head.Version + 1, Action: ActionDelete, Author: author,
		At: at.UTC(), Comment: comment, Deleted: true}, nil
}

// live returns the newest version of a rule that exists, checking base against it.
func (c *Catalog) live(id string, base int) (RuleVersion, error) {
	head, ok := c.Head(id)
	if !ok || head.Deleted {
		return RuleVersion{}, fmt.Errorf("rule %s: %w", id, ErrRuleNotFound)
	}
	if base != 0 && base != head.Version {
		return RuleVersion{}, fmt.Errorf("rule %s: %w: you edited version %d, the newest is %d", id, ErrVersionConflict, base, head.Version)
	}
	return head, nil
}

// parseOne parses an author's text, which must hold exactly one rule.
func parseOne(src []byte) (lang.Rule, error) {
	rs, err := lang.Parse("body", src)
	if err != nil {
		return lang.Rule{}, err
	}
	if len(rs) != 1 {
		return lang.Rule{}, fmt.Errorf("%w; it holds %d", ErrNotOneRule, len(rs))
	}
	return rs[0], nil
}

// makeVersion writes the version (and the enabled flag, when given) into the rule's text
// and checks that the result compiles.
func makeVersion(src []byte, id string, version int, enabled *bool, action, author, comment string, at time.Time) (RuleVersion, error) {
	fields := [][2]string{{"version", strconv.Itoa(version)}}
	if enabled != nil {
		fields = append(fields, [2]string{"enabled", strconv.FormatBool(*enabled)})
	}
	text, err := setFields(src, fields)
	if err != nil {
		return RuleVersion{}, err
	}
	v := RuleVersion{RuleID: id, Version: version, Action: action, Author: author, At: at.UTC(), Comment: comment, Source: text}
	if _, err := v.Rule(); err != nil {
		return RuleVersion{}, err
	}
	return v, nil
}

// setFields sets top-level scalar fields of a one-rule text, adding them after the id when
// missing, and renders the rule as YAML.
func setFields(src []byte, fields [][2]string) (string, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil {
		return "", fmt.Errorf("rule text: %w", err)
	}
	if len(doc.Content) == 0 {
		return "", ErrNotOneRule
	}
	m := lang.Deref(doc.Content[0])
	if m.Kind == yaml.SequenceNode && len(m.Content) == 1 {
		m = lang.Deref(m.Content[0])
	}
	if m.Kind != yaml.MappingNode {
		return "", ErrNotOneRule
	}
	for _, f := range fields {
		set := false
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == f[0] {
				m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: f[1],
					LineComment: m.Content[i+1].LineComment}
				if f[0] == "enabled" {
					m.Content[i+1].Tag = "!!bool"
				}
				set = true
				break
			}
		}
		if set {
			continue
		}
		at := 0
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "id" || m.Content[i].Value == "version" {
				at = i + 2
			}
		}
		tag := "!!int"
		if f[0] == "enabled" {
			tag = "!!bool"
		}
		m.Content = slices.Insert(m.Content, at,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f[0]},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: f[1]})
	}
	if lang.Deref(doc.Content[0]) != m {
		return lang.EncodeSource(m), nil
	}
	return lang.EncodeSource(&doc), nil
}

// VersionDiff is what changed between two versions of a rule.
type VersionDiff struct {
	RuleID  string        `json:"rule_id"`
	From    int           `json:"from"`
	To      int           `json:"to"`
	Changes []FieldChange `json:"changes"`
	// Unified is a line diff of the two sources, in unified form.
	Unified string `json:"unified"`
}

// FieldChange is one field that differs.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Diff compares two versions of a rule field by field and line by line.
func Diff(a, b RuleVersion) VersionDiff {
	d := VersionDiff{RuleID: b.RuleID, From: a.Version, To: b.Version}
	fa, fb := fieldsOf(a), fieldsOf(b)
	names := make([]string, 0, len(fa)+len(fb))
	for k := range fa {
		names = append(names, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return fieldOrder(names[i]) < fieldOrder(names[j]) || fieldOrder(names[i]) == fieldOrder(names[j]) && names[i] < names[j]
	})
	for _, k := range names {
		if fa[k] != fb[k] {
			d.Changes = append(d.Changes, FieldChange{Field: k, From: fa[k], To: fb[k]})
		}
	}
	d.Unified = unifiedDiff(fmt.Sprintf("%s@%d", a.RuleID, a.Version), fmt.Sprintf("%s@%d", b.RuleID, b.Version), a.Source, b.Source)
	return d
}

var fieldNames = []string{"id", "name", "description", "version", "enabled", "deleted", "types", "when", "group_by", "for",
	"window.kind", "window.size", "window.of", "window.having", "absent",
	"raise.category", "raise.severity", "raise.title", "raise.correlation_key", "raise.agency", "raise.shadow"}

func fieldOrder(name string) int {
	if i := slices.Index(fieldNames, name); i >= 0 {
		return i
	}
	return len(fieldNames)
}

// fieldsOf flattens a version's rule into field → text; a version that does not compile is
// read for what YAML can tell.
func fieldsOf(v RuleVersion) map[string]string {
	out := map[string]string{}
	if v.Deleted {
		out["deleted"] = "true"
		return out
	}
	r, err := v.Rule()
	if err != nil {
		out["source"] = v.Source
		return out
	}
	put := func(k, val string) {
		if val != "" {
			out[k] = val
		}
	}
	put("id", r.ID)
	put("name", r.Name)
	put("description", r.Description)
	put("version", strconv.Itoa(r.Version))
	put("enabled", strconv.FormatBool(r.Enabled))
	put("types", strings.Join(r.Types, ", "))
	put("when", r.When)
	put("group_by", r.GroupBy)
	if r.For > 0 {
		put("for", r.For.String())
	}
	if r.Absent > 0 {
		put("absent", r.Absent.String())
	}
	if w := r.Window; w != nil {
		put("window.kind", w.Kind)
		put("window.size", w.Size.String())
		put("window.of", w.Of)
		put("window.having", w.Having)
	}
	put("raise.category", r.Raise.Category)
	put("raise.severity", r.Raise.Severity)
	put("raise.title", r.Raise.Title)
	put("raise.correlation_key", r.Raise.CorrelationKey)
	put("raise.agency", r.Raise.Agency)
	if r.Raise.Shadow {
		put("raise.shadow", "true")
	}
	return out
}

// unifiedDiff is a unified line diff of a and b with three lines of context (go-udiff), or ""
// when they are equal.
func unifiedDiff(nameA, nameB, a, b string) string {
	return udiff.Unified(nameA, nameB, a, b)
}
