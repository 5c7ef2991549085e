package transport

import (
	"os"

	"golang.org/x/sys/unix"
)

const syncfsSupported = true

// flushableFS reports whether the file system that holds dir is one where the broker shares
// its flushes. kfake rewrites its log of committed offsets into a temporary file and renames it
// over the old one, and fsyncs the temporary file first only in its own per-batch mode. ext4
// starts writing a file's data when it replaces another by rename (auto_da_alloc), so a power
// cut in the milliseconds before the next flush is unlikely to find the new log empty there —
// not impossible (docs/performance.md, "Shared flushes"); other file systems keep no such
// promise, and the broker fsyncs every batch there. tmpfs keeps nothing over a power cut
// anyway.
func flushableFS(dir string) (ok bool, fsType int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	t := int64(st.Type)
	return t == unix.EXT4_SUPER_MAGIC || t == unix.TMPFS_MAGIC, t, nil
}

// syncfs flushes the file system that holds f (syncfs(2)).
func syncfs(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := conn.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: f.Name(), Err: serr}
	}
	return nil
}
