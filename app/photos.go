package app

import (
	"context"
	"flag"
	"fmt"
	_ "image/jpeg" // the photo formats DecodeConfig checks
	_ "image/png"
	"os"
	"path/filepath"

	"github.com/urbanbrain/urbanbrain/objstore"
)

// Evidence photos (docs/api.md, "Photos") are kept in an object store: files under the data
// directory, or any S3-compatible store. This file opens it; the routes that upload and serve
// photos are package api's (api/photos.go).

func (c *Config) registerObjectStoreFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ObjectStore.Kind, "object-store", objstore.KindDir, "where evidence photos are kept: dir (files under --data-dir/objects, one node) or s3 (any S3-compatible store, shared by every node)")
	fs.StringVar(&c.ObjectStore.Endpoint, "s3-endpoint", "", "host:port of the S3-compatible store (MinIO: 127.0.0.1:9000)")
	fs.StringVar(&c.ObjectStore.Bucket, "s3-bucket", "urbanbrain", "bucket for evidence photos (created if missing)")
	fs.StringVar(&c.ObjectStore.Region, "s3-region", "us-east-1", "region of the bucket")
	fs.StringVar(&c.ObjectStore.Prefix, "s3-prefix", "", "prefix of every object name in the bucket")
	fs.BoolVar(&c.ObjectStore.TLS, "s3-tls", false, "reach the S3 endpoint over HTTPS")
	fs.StringVar(&c.ObjectStore.AccessKey, "s3-access-key", "", "S3 access key id")
	fs.StringVar(&c.S3SecretKeyFile, "s3-secret-key-file", "", "file holding the S3 secret key (default: the "+EnvS3SecretKey+" environment variable; never a flag)")
}

// EnvS3SecretKey is where the S3 secret key is read from without --s3-secret-key-file.
const EnvS3SecretKey = "URBANBRAIN_S3_SECRET_KEY"

// openObjects opens the evidence photo store.
func (a *App) openObjects(ctx context.Context) error {
	cfg := a.cfg.ObjectStore
	if cfg.Kind == "" || cfg.Kind == objstore.KindDir {
		cfg.Kind, cfg.Dir = objstore.KindDir, filepath.Join(a.cfg.DataDir, "objects")
	}
	if cfg.Kind == objstore.KindS3 {
		var err error
		if cfg.SecretKey, err = secret(a.cfg.S3SecretKeyFile, os.Getenv(EnvS3SecretKey)); err != nil { // netsec.go
			return fmt.Errorf("s3 secret key: %w", err)
		}
	}
	st, err := objstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	a.objects = st
	return nil
}
