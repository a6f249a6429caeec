package sim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tongban/tongban/adapters"
)

// ErrNumbersExhausted means a district ran out of case numbers for the day
// (Nanhai has 4 digits, Liwan 5).
var ErrNumbersExhausted = errors.New("sim: case numbers of the day exhausted")

// numbering assigns a district's own case numbers: its prefix, the day in
// UTC+8 as yyyyMMdd, and a sequence restarting at 1 each day (districts.md:
// Nanhai "440605" + 4 digits, Liwan "LW" + 5 digits). Numbers the district
// assigns to delivered cases and numbers of the cases it sends come from
// the same sequence, so they never collide.
type numbering struct {
	prefix string
	digits int

	mu   sync.Mutex
	day  string
	next int
}

func newNumbering(division string) (*numbering, error) {
	switch division {
	case adapters.DivisionNanhai:
		return &numbering{prefix: adapters.DivisionNanhai, digits: 4}, nil
	case adapters.DivisionLiwan:
		return &numbering{prefix: "LW", digits: 5}, nil
	}
	return nil, fmt.Errorf("sim: no case numbering for division %q", division)
}

// format is the case number of sequence seq on the day of t.
func (n *numbering) format(t time.Time, seq int) string {
	return fmt.Sprintf("%s%s%0*d", n.prefix, t.In(cst).Format("20060102"), n.digits, seq)
}

func (n *numbering) max() int {
	m := 1
	for range n.digits {
		m *= 10
	}
	return m - 1
}

// assign returns the next number of the day of t.
func (n *numbering) assign(t time.Time) (string, error) {
	day := t.In(cst).Format("20060102")
	n.mu.Lock()
	defer n.mu.Unlock()
	if day != n.day {
		n.day, n.next = day, 1
	}
	if n.next > n.max() {
		return "", fmt.Errorf("%w (%s)", ErrNumbersExhausted, day)
	}
	no := n.format(t, n.next)
	n.next++
	return no, nil
}
