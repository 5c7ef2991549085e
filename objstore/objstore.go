// Package objstore keeps files that do not belong in Kafka or the event store: the photos grid
// workers attach to a resolution. Two backends: files under the data dir (the embedded
// default, one node) and any S3-compatible store (MinIO, Ceph, a cloud's object storage) through
// minio-go, which every node of a deployment shares.
//
// Keys are chosen by the caller and checked here: slash-separated segments of letters, digits,
// '-', '_' and '.', none of them "." or "..", so no key can climb out of its directory or bucket.
// Objects are written once and never changed: the photos are content-addressed, so a second Put
// of a key stores the same bytes again.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// ErrNotFound is the answer of Get for a key that holds nothing.
var ErrNotFound = errors.New("objstore: no such object")

// Info describes a stored object.
type Info struct {
	Size        int64
	ContentType string
}

// Store is an object store.
type Store interface {
	// Put stores size bytes of r under key.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens the object under key (ErrNotFound if none); the caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Ping checks that the store is reachable and writable, for readiness.
	Ping(ctx context.Context) error
}

// Config chooses and configures a backend (flags in app: --object-store, --s3-*).
type Config struct {
	Kind string // KindDir or KindS3
	Dir  string // KindDir: the directory (made 0700 if missing)

	// KindS3.
	Endpoint  string // host:port
	Bucket    string
	Region    string
	Prefix    string // prepended to every key ("urbanbrain/")
	TLS       bool
	AccessKey string
	SecretKey string
}

// Backends.
const (
	KindDir = "dir"
	KindS3  = "s3"
)

// Open opens the store cfg describes.
func Open(ctx context.Context, cfg Config) (Store, error) {
	switch cfg.Kind {
	case KindDir, "":
		return openDir(cfg.Dir)
	case KindS3:
		return openS3(ctx, cfg)
	}
	return nil, fmt.Errorf("objstore: unknown kind %q (want %s or %s)", cfg.Kind, KindDir, KindS3)
}

var segment = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// CheckKey says why key may not name an object, or nil.
func CheckKey(key string) error {
	if key == "" || len(key) > 512 {
		return fmt.Errorf("objstore: key of %d bytes", len(key))
	}
	for _, s := range strings.Split(key, "/") {
		if !segment.MatchString(s) || s == "." || s == ".." {
			return fmt.Errorf("objstore: key %q: segment %q is not allowed", key, s)
		}
	}
	return nil
}
