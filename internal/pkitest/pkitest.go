// Package pkitest gives a test binary one dev PKI, made as `tongban certs
// init` lays it out, in a temporary directory removed after the tests.
package pkitest

import (
	"os"
	"testing"

	"github.com/tongban/tongban/certs"
)

// Run makes the dev PKI in a new temporary directory named after prefix,
// hands it (and its directory) to use, runs the tests and removes the
// directory. It returns m.Run's code, for TestMain to pass to os.Exit. It
// panics when the PKI cannot be made: no test could run without it.
func Run(m *testing.M, prefix string, use func(pki *certs.DevPKI, dir string)) int {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := certs.InitDevPKI(dir); err != nil {
		panic(err)
	}
	pki, err := certs.LoadDevPKI(dir)
	if err != nil {
		panic(err)
	}
	use(pki, dir)
	return m.Run()
}
