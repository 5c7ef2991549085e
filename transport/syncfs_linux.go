package transport

import (
	"os"

	"golang.org/x/sys/unix"
)

const syncfsSupported = true

// renamesOrdered reports whether the file system that holds dir writes a file's data before a
// rename that replaces another file with it reaches the disk. kfake rewrites its groups and
// producer-id logs into a temporary file and renames it over the old one, and fsyncs the
// temporary file first only under its own SyncWrites: without that, on a file system that may
// reorder the two, a power cut could leave the committed offsets empty. ext4 orders them in
// its default data=ordered mode (auto_da_alloc); tmpfs keeps nothing over a power cut anyway.
func renamesOrdered(dir string) (ok bool, fsType int64, err error) {
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
