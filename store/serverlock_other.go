//go:build !unix

package store

import (
	"errors"
	"os"
)

// flockFile is not implemented here: a server on SQLite then leaves the
// leases a killed server left to run out.
func flockFile(string) (*os.File, error) { return nil, errors.ErrUnsupported }
