//go:build !linux

package transport

import "os"

// Elsewhere there is no flush of a whole file system; the embedded broker then fsyncs every
// batch itself (kfake's SyncWrites).
const syncfsSupported = false

func syncfs(*os.File) error { return nil }

func flushableFS(string) (bool, int64, error) { return false, 0, nil }
