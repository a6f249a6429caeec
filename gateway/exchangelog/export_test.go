package exchangelog

import (
	"testing"
	"time"
)

func TestSmallExportVerifies(t *testing.T) {
	f := newFixture(t)
	start := f.now
	f.build(20, 4)
	b := f.export(start, f.now)
	s, err := verify(t, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + s.String())
	if s.EndIndex != f.log.Size() || s.FirstIndex != 0 {
		t.Errorf("indexes %d..%d, want 0..%d", s.FirstIndex, s.EndIndex, f.log.Size())
	}
	_ = time.Second
}
