package exchangelog

import (
	"os"
	"testing"
)

var pkiDir string

func mkTemp() (string, error) {
	var err error
	pkiDir, err = os.MkdirTemp("", "exchangelog-pki-")
	return pkiDir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}
