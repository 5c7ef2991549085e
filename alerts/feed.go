package alerts

import (
	"crypto/sha1"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// AtomContentType is the media type of a feed.
const AtomContentType = "application/atom+xml"

// atomFeed is an Atom 1.0 feed (RFC 4287) of CAP alerts, as CAP feeds publish them: one
// entry per message, its CAP document inline as the entry's content (type
// application/cap+xml, which RFC 4287 4.1.3.3 carries as child XML, not escaped text).
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  *atomPerson `xml:"author,omitempty"`
	Link    []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID        string      `xml:"id"`
	Title     string      `xml:"title"`
	Updated   string      `xml:"updated"`
	Published string      `xml:"published"`
	Author    atomPerson  `xml:"author"`
	Category  []atomCat   `xml:"category,omitempty"`
	Summary   string      `xml:"summary,omitempty"`
	Content   atomContent `xml:"content"`
}

type atomCat struct {
	Term  string `xml:"term,attr"`
	Label string `xml:"label,attr,omitempty"`
}

type atomContent struct {
	Type  string `xml:"type,attr"`
	Alert Alert  `xml:"urn:oasis:names:tc:emergency:cap:1.2 alert"`
}

// Feed returns an Atom 1.0 feed of alerts: the feed's id and self link are selfURL (an
// absolute URL), it is updated when its latest alert was sent, and each alert is one entry
// whose id is derived from the alert's sender and identifier (stable across rebuilds), whose
// title is the alert's headline, and whose content is the whole CAP document. Entries keep
// the order given; callers list the newest first.
func Feed(title, selfURL string, alerts []Alert) ([]byte, error) {
	if u, err := url.Parse(selfURL); err != nil || !u.IsAbs() {
		return nil, fmt.Errorf("alert feed: self URL %q is not absolute", selfURL)
	}
	title = clean(title, 200)
	if title == "" {
		return nil, errors.New("alert feed: empty title")
	}
	f := atomFeed{
		ID:    selfURL,
		Title: title,
		Link:  []atomLink{{Rel: "self", Type: AtomContentType, Href: selfURL}},
	}
	var updated time.Time
	for _, a := range alerts {
		if a.Identifier == "" || a.Sender == "" || a.Sent.IsZero() {
			return nil, fmt.Errorf("alert feed: alert %q lacks an identifier, sender or sent time", a.Identifier)
		}
		if a.Sent.After(updated) {
			updated = a.Sent.Time
		}
		e := atomEntry{
			ID:        entryID(a),
			Title:     a.MsgType + " " + a.Identifier,
			Updated:   atomTime(a.Sent.Time),
			Published: atomTime(a.Sent.Time),
			Author:    atomPerson{Name: a.Sender},
			Content:   atomContent{Type: ContentType, Alert: a},
		}
		if len(a.Info) > 0 {
			in := a.Info[0]
			if in.Headline != "" {
				e.Title = in.Headline
			}
			if in.SenderName != "" {
				e.Author.Name = in.SenderName
			}
			e.Summary = in.Description
			e.Category = []atomCat{{Term: in.Severity, Label: in.Event}}
		}
		f.Entries = append(f.Entries, e)
	}
	if updated.IsZero() {
		updated = time.Unix(0, 0)
	}
	f.Updated = atomTime(updated)
	if len(f.Entries) == 0 {
		// RFC 4287 4.1.1: a feed whose entries lack an author needs one of its own.
		f.Author = &atomPerson{Name: title}
	}
	body, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("alert feed: %w", err)
	}
	return append([]byte(xml.Header), append(body, '\n')...), nil
}

// atomTime is an RFC 3339 time for Atom, in the time's own zone, to the second.
func atomTime(t time.Time) string { return t.Truncate(time.Second).Format(time.RFC3339) }

// entryID is a name-based (version 5, SHA-1) UUID URN of the alert's sender and identifier
// (RFC 4122 4.3, in the URL namespace), so an entry keeps its id however often the feed is
// rebuilt and two senders' identifiers never collide.
func entryID(a Alert) string {
	// The RFC 4122 URL namespace, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte("urn:cap:" + a.Sender + ":" + a.Identifier))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
