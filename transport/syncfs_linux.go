package transport

import (
	"os"

	"golang.org/x/sys/unix"
)

const syncfsSupported = true

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
