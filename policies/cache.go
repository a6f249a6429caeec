package policies

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TimeGranularityKey is the custom METADATA key by which a bundle declares
// how its decision depends on the input's time, on the decision rule, its
// document or its package:
//
//	# METADATA
//	# custom:
//	#   decision_time_granularity: day
//
// "day" says that the decision depends on input.time only through the
// calendar day in China Standard Time (+08:00), as the catalog's effective
// dates do (contracts/catalog.md, rule 5). A bundle that declares it gets a
// decision cache; one that does not is evaluated for every input. The
// declaration is the policy author's promise: a rule that looks at the hour
// must not be under it.
const TimeGranularityKey = "decision_time_granularity"

// maxCachedDecisions bounds a cache. Inputs repeat: an item, a direction, an
// applicant kind, a channel and a set of materials, on one day. A cache that
// fills is emptied and fills again.
const maxCachedDecisions = 16384

// decisionCache remembers the decisions of one engine (so of one revision)
// by their input with its time reduced to the day.
type decisionCache struct {
	mu sync.RWMutex
	m  map[string]Decision
}

// dayGranular reports whether the decision rule, its document or its
// package declares decision_time_granularity: day, and where.
func dayGranular(c *ast.Compiler) (bool, *ast.Location) {
	as := c.GetAnnotationSet()
	if as == nil {
		return false, nil
	}
	for _, r := range c.GetRulesExact(decisionRef) {
		for _, ar := range as.Chain(r) {
			if ar.Annotations != nil && ar.Annotations.Custom[TimeGranularityKey] == "day" {
				return true, ar.Annotations.Location
			}
		}
	}
	return false, nil
}

// maxGranularityItems bounds the items checkDayGranular tries (in code
// order), so that validating a catalog of 20,000 items stays quick; a rule
// on the hour is rarely about one item.
const maxGranularityItems = 64

// checkDayGranular tests a bundle's declaration that its decision is the same
// all day: for catalog items, each enabled direction, applicant kind and
// channel, with the required materials, the decision evaluated at 00:00,
// 12:00 and the last nanosecond of a day (+08:00) must not change, on the
// days a decision is most likely to be asked (today, tomorrow) and on the
// item's effective dates. The first difference is the problem; nil when the
// bundle does not declare day granularity or does not compile.
func (b *Bundle) checkDayGranular(ctx context.Context, bt *built) ([]Problem, error) {
	declared, loc := dayGranular(bt.compiler)
	if !declared {
		return nil, nil
	}
	e, err := prepare(ctx, b, bt)
	if err != nil {
		return nil, nil // the compile problems are reported already
	}
	today := time.Now().In(chinaTime)
	codes := slices.Sorted(maps.Keys(e.catalog.Items))
	if len(codes) > maxGranularityItems {
		codes = codes[:maxGranularityItems]
	}
	for _, code := range codes {
		for _, in := range dayStartInputs(code, e.catalog.Items[code], today) {
			first, ferr := e.Evaluate(ctx, in)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			start := in.Time
			for _, at := range []time.Time{start.Add(12 * time.Hour), start.AddDate(0, 0, 1).Add(-time.Nanosecond)} {
				in.Time = at
				other, oerr := e.Evaluate(ctx, in)
				if (ferr == nil) != (oerr == nil) || !reflect.DeepEqual(first, other) {
					p := Problem{Message: fmt.Sprintf("%s: day is declared, but the decision for item %s (%s→%s, %s, %s) at %s differs from the one at %s",
						TimeGranularityKey, code, in.From, in.To, in.ApplicantKind, in.Channel, start.Format(time.RFC3339), at.Format(time.RFC3339Nano))}
					if loc != nil {
						p.File, p.Line = loc.File, loc.Row
					}
					return []Problem{p}, nil
				}
			}
		}
	}
	return nil, nil
}

// dayStartInputs are the inputs checkDayGranular tries for one item, at
// 00:00 (+08:00) of each day it tries: every enabled direction, applicant
// kind and channel, with the required materials, on today, tomorrow and
// the days on either side of the item's effective dates.
func dayStartInputs(code string, item Item, today time.Time) []Input {
	days := []time.Time{today, today.AddDate(0, 0, 1)}
	for _, s := range []*string{item.EffectiveFrom, item.EffectiveUntil} {
		if s == nil {
			continue
		}
		if d, err := time.ParseInLocation(time.DateOnly, *s, chinaTime); err == nil {
			days = append(days, d, d.AddDate(0, 0, -1))
		}
	}
	materials := slices.Sorted(maps.Keys(item.RequiredMaterials))
	directions := item.Directions
	if len(directions) == 0 {
		directions = [][]string{{"", ""}}
	}
	kinds := item.ApplicantKinds
	if len(kinds) == 0 {
		kinds = []string{""}
	}
	var out []Input
	for _, dir := range directions {
		if len(dir) != 2 {
			continue
		}
		for _, kind := range kinds {
			for _, channel := range []string{"COUNTER", "ONLINE", "POST"} {
				for _, day := range days {
					y, m, d := day.Date()
					out = append(out, Input{From: dir[0], To: dir[1], BasicCode: code, ApplicantKind: kind, Channel: channel,
						Materials: materials, Time: time.Date(y, m, d, 0, 0, 0, 0, chinaTime)})
				}
			}
		}
	}
	return out
}

// cacheKey is the input with its time reduced to the day in +08:00. Every
// field is length-prefixed, so that no two inputs share a key.
func cacheKey(in Input) string {
	n := 16 + len(in.From) + len(in.To) + len(in.BasicCode) + len(in.ApplicantKind) + len(in.Channel)
	for _, m := range in.Materials {
		n += 2 + len(m)
	}
	b := make([]byte, 0, n+8)
	y, mo, d := in.Time.In(chinaTime).Date()
	b = binary.BigEndian.AppendUint32(b, uint32(y))
	b = append(b, byte(mo), byte(d))
	for _, s := range [...]string{in.From, in.To, in.BasicCode, in.ApplicantKind, in.Channel} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(in.Materials)))
	for _, m := range in.Materials {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return string(b)
}

func (c *decisionCache) get(key string) (Decision, bool) {
	c.mu.RLock()
	d, ok := c.m[key]
	c.mu.RUnlock()
	return d.clone(), ok
}

func (c *decisionCache) put(key string, d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedDecisions {
		c.m = make(map[string]Decision)
	}
	c.m[key] = d.clone()
}

// clone gives the caller slices of its own.
func (d Decision) clone() Decision {
	d.MissingMaterials = slices.Clone(d.MissingMaterials)
	d.Reasons = slices.Clone(d.Reasons)
	return d
}
