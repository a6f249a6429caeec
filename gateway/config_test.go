package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCommitIntervalConfig: store.commit_interval is read as a duration,
// an explicit 0 stays 0 (commits back to back), unset leaves the store's
// default, and values outside [0, 1s] are refused naming the setting.
func TestCommitIntervalConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		want    *time.Duration // nil: unset
		wantErr bool
	}{
		{yaml: "store: {driver: sqlite}"},
		{yaml: "store: {commit_interval: 0s}", want: new(time.Duration(0))},
		{yaml: "store: {commit_interval: 20ms}", want: new(20 * time.Millisecond)},
		{yaml: "store: {commit_interval: -1ms}", wantErr: true},
		{yaml: "store: {commit_interval: 2s}", wantErr: true},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			err = c.ApplyDefaults()
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "store.commit_interval") {
					t.Fatalf("ApplyDefaults: %v, want an error naming store.commit_interval", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.Store.CommitInterval
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("commit_interval %v, want %v", got, tc.want)
			}
		})
	}
}
