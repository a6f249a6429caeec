package policies

import (
	"encoding/binary"
	"slices"
	"sync"

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
// package declares decision_time_granularity: day.
func dayGranular(c *ast.Compiler) bool {
	as := c.GetAnnotationSet()
	if as == nil {
		return false
	}
	for _, r := range c.GetRulesExact(decisionRef) {
		for _, ar := range as.Chain(r) {
			if ar.Annotations != nil && ar.Annotations.Custom[TimeGranularityKey] == "day" {
				return true
			}
		}
	}
	return false
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
