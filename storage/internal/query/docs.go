package query

import (
	"encoding/json"
	"fmt"

	"github.com/urbanbrain/urbanbrain/storage"
)

// Rows is a result set, as database/sql and clickhouse-go both return one.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// EachDoc calls fn with every row of a one-column result of JSON documents, decoded, and
// closes rows. It stops at fn's first error and returns it as it is; an error reading or
// decoding a row is prefixed with prefix.
func EachDoc[T any](rows Rows, prefix string, fn func(T) error) error {
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return fmt.Errorf("%s%w", prefix, err)
		}
		var v T
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			return fmt.Errorf("%sdecode: %w", prefix, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Docs decodes every row of a one-column result of JSON documents and closes rows. The
// result is never nil, so an empty page encodes as [].
func Docs[T any](rows Rows) ([]T, error) {
	out := []T{}
	err := EachDoc(rows, "", func(v T) error {
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Timeline reads a result of (version, change document) rows, oldest first, as an incident's
// timeline, and closes rows. The result is never nil.
func Timeline(rows Rows) ([]storage.TimelineEntry, error) {
	defer rows.Close()
	out := []storage.TimelineEntry{}
	for rows.Next() {
		var (
			e   storage.TimelineEntry
			doc string
		)
		if err := rows.Scan(&e.Version, &doc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(doc), &e.Change); err != nil {
			return nil, fmt.Errorf("decode change v%d: %w", e.Version, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
