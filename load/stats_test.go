package load

import "testing"

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := func() []float64 { return []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} }
	for _, tc := range []struct {
		p    float64
		want float64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {10, 1}, {1, 1}} {
		if got := percentile(xs(), tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}
