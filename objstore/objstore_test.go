package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/urbanbrain/urbanbrain/objstore"
)

// backends are both stores: files in a temporary directory, and an S3 bucket on an in-process
// S3 server (gofakes3) reached through minio-go over HTTP, as MinIO would be.
func backends(t *testing.T) map[string]objstore.Store {
	t.Helper()
	ctx := context.Background()
	d, err := objstore.Open(ctx, objstore.Config{Kind: objstore.KindDir, Dir: t.TempDir() + "/photos"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	s, err := objstore.Open(ctx, objstore.Config{Kind: objstore.KindS3, Endpoint: strings.TrimPrefix(srv.URL, "http://"),
		Bucket: "urbanbrain", Region: "us-east-1", Prefix: "city", AccessKey: "test", SecretKey: "test-secret"})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]objstore.Store{"dir": d, "s3": s}
}

func TestPutGetOnEveryBackend(t *testing.T) {
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			body := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)
			key := "incidents/INC-1101-abc/0f1e.png"
			if err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), "image/png"); err != nil {
				t.Fatal(err)
			}
			rc, info, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			_ = rc.Close()
			if !bytes.Equal(got, body) || info.Size != int64(len(body)) || info.ContentType != "image/png" {
				t.Errorf("got %d bytes (%+v), want %d bytes of image/png", len(got), info, len(body))
			}
			if _, _, err := st.Get(ctx, "incidents/INC-1101-abc/none.png"); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("a missing key: %v, want ErrNotFound", err)
			}
			if err := st.Ping(ctx); err != nil {
				t.Errorf("ping: %v", err)
			}
			// A short body is refused rather than stored cut off (dir) or left to the server (s3).
			if name == "dir" {
				if err := st.Put(ctx, "incidents/x/short.png", bytes.NewReader(body[:10]), 100, "image/png"); err == nil {
					t.Error("a body shorter than announced was stored")
				}
				if _, _, err := st.Get(ctx, "incidents/x/short.png"); !errors.Is(err, objstore.ErrNotFound) {
					t.Errorf("the refused object is visible: %v", err)
				}
			}
		})
	}
}

// No key climbs out of its directory or bucket, whatever the backend.
func TestKeysCannotEscape(t *testing.T) {
	for name, st := range backends(t) {
		for _, key := range []string{"", "../etc/passwd", "a/../../b", "a//b", "/abs", "a/./b", "a\\b", "a/b c", strings.Repeat("x", 600)} {
			if err := st.Put(context.Background(), key, strings.NewReader("x"), 1, "text/plain"); err == nil {
				t.Errorf("%s: key %q was accepted", name, key)
			}
			if _, _, err := st.Get(context.Background(), key); err == nil || errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("%s: Get(%q) = %v, want a key error", name, key, err)
			}
		}
	}
}
