package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
)

// dir keeps objects as files under root, written to a temporary file and renamed into place so
// a reader never sees half an object. The content type is not stored: it follows from the name's
// extension.
type dir struct{ root string }

func openDir(root string) (*dir, error) {
	if root == "" {
		return nil, errors.New("objstore: no directory")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	return &dir{root: root}, nil
}

func (d *dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

func (d *dir) Put(_ context.Context, key string, r io.Reader, size int64, _ string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("objstore: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("objstore: %w", err)
	}
	defer os.Remove(f.Name()) // gone after the rename; the leftover of a failure otherwise
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = fmt.Errorf("objstore: %s: %d bytes read, %d announced", key, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	return err
}

func (d *dir) Get(_ context.Context, key string) (io.ReadCloser, Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("objstore: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, Info{}, ErrNotFound
	}
	return f, Info{Size: st.Size(), ContentType: mime.TypeByExtension(filepath.Ext(key))}, nil
}

func (d *dir) Ping(context.Context) error {
	f, err := os.CreateTemp(d.root, ".ping-*")
	if err != nil {
		return fmt.Errorf("objstore: %w", err)
	}
	_ = f.Close()
	return os.Remove(f.Name())
}
