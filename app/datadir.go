package app

import (
	"fmt"
	"os"
)

// privateDir creates the data directory readable by the owner only, and takes the group's and
// others' permissions off one made before: it holds the SQLite store and the embedded broker's
// log, both full of callers' names, phones and ID numbers (issue 11 item 6), and the keys.
func privateDir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(path, perm&^0o077); err != nil {
			return fmt.Errorf("make %s private: %w", path, err)
		}
	}
	return nil
}
