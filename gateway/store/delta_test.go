package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
)

// material is n bytes of base64 of pseudo-random content (seeded).
func material(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 1))
	raw := make([]byte, n*3/4)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// translatedFixtures: each district's sample with materials of several KiB,
// translated by the other district's codec, as the gateway stores them.
func translatedFixtures(t testing.TB) map[string][2][]byte {
	t.Helper()
	out := map[string][2][]byte{}
	for _, f := range []struct {
		name     string
		from, to adapters.Codec
	}{
		{"liwan-physician/case.json", liwan.Codec, nanhai.Codec},
		{"nanhai-llc-setup/case.xml", nanhai.Codec, liwan.Codec},
	} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "fixtures", f.name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.from.DecodeCase(b)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		// Larger materials, as cases of the load generator carry.
		for i := range c.Materials {
			c.Materials[i].Content = []byte("%PDF-1.4\n% the same first line in every material\n" + material(uint64(i), 6000))
		}
		req, err := f.from.EncodeCase(c)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		rec, err := f.to.EncodeCase(c)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		out[f.name] = [2][]byte{req, rec}
	}
	return out
}

// TestDeltaFixtures: a translated record is stored in a fraction of its
// size against its request and read back byte for byte.
func TestDeltaFixtures(t *testing.T) {
	for name, f := range translatedFixtures(t) {
		req, rec := f[0], f[1]
		d := deltaAgainst(rec, req)
		if !bytes.HasPrefix(d, deltaMagic) {
			t.Errorf("%s: %d-byte record kept whole", name, len(rec))
			continue
		}
		if len(d) > len(rec)/5 {
			t.Errorf("%s: delta %d bytes of a %d-byte record, want at most a fifth", name, len(d), len(rec))
		}
		got, err := undelta(d, req)
		if err != nil || !bytes.Equal(got, rec) {
			t.Errorf("%s: undelta = %d bytes, %v; want the record back", name, len(got), err)
		}
		// Against another request the delta does not fit.
		other := bytes.Clone(req)
		if _, err := undelta(d, other[:len(other)/2]); !errors.Is(err, errDelta) {
			t.Errorf("%s: undelta against a shorter request: %v, want errDelta", name, err)
		}
	}
}

// TestDeltaKeepsWhole: records with nothing worth copying are stored as they
// are, and undelta passes them (and any record in clear) through.
func TestDeltaKeepsWhole(t *testing.T) {
	long := material(7, 4000)
	for _, c := range []struct{ name, rec, base string }{
		{"empty", "", long},
		{"short record", `{"a":"` + long[:200] + `"}`, long},
		{"no base", `{"a":"` + long + `"}`, ""},
		{"not in base", `{"a":"` + material(8, 4000) + `"}`, `<A>` + long + `</A>`},
		// The same anchor, a different run: base holds the run's start only.
		{"prefix only", `{"a":"` + long + `"}`, `<A>` + long[:1000] + `</A><B>` + long[1000:] + `</B>`},
		{"whitespace in base", `{"a":"` + long + `"}`, `<A>` + strings.Join([]string{long[:76], long[76:]}, "\n") + `</A>`},
	} {
		rec := []byte(c.rec)
		if d := deltaAgainst(rec, []byte(c.base)); !bytes.Equal(d, rec) {
			t.Errorf("%s: stored as %d bytes, want the record as it is", c.name, len(d))
		}
		if got, err := undelta(rec, nil); err != nil || !bytes.Equal(got, rec) {
			t.Errorf("%s: undelta of a record in clear = %v", c.name, err)
		}
	}
}

// TestDeltaRuns: several runs, in another order than the base's, each
// copied; text between them is kept.
func TestDeltaRuns(t *testing.T) {
	m := []string{material(1, 3000), material(2, 400), material(3, 5000)}
	base := []byte(fmt.Sprintf(`<C><M>%s</M><M>%s</M><M>%s</M></C>`, m[0], m[1], m[2]))
	rec := []byte(fmt.Sprintf(`{"m":["%s","%s","%s"],"tail":"%s"}`, m[2], m[0], m[1], strings.Repeat("x", 300)))
	d := deltaAgainst(rec, base)
	if len(d) > 500 {
		t.Errorf("delta of %d bytes, want under 500", len(d))
	}
	got, err := undelta(d, base)
	if err != nil || !bytes.Equal(got, rec) {
		t.Fatalf("undelta: %v", err)
	}
}

// TestUndeltaRefusesDamage: every truncation and every single-byte change
// of a delta's header or operations is refused or rebuilt to the length
// recorded, never a panic or a record of another length.
func TestUndeltaRefusesDamage(t *testing.T) {
	for name, f := range translatedFixtures(t) {
		req, rec := f[0], f[1]
		d := deltaAgainst(rec, req)
		for n := len(deltaMagic); n < len(d); n++ {
			if _, err := undelta(d[:n], req); !errors.Is(err, errDelta) {
				t.Fatalf("%s: truncated at %d: %v, want errDelta", name, n, err)
			}
		}
		for i := len(deltaMagic); i < len(d); i += 7 {
			bad := bytes.Clone(d)
			bad[i] ^= 0x80
			got, err := undelta(bad, req)
			if err == nil && len(got) != len(rec) {
				t.Fatalf("%s: byte %d changed: %d bytes rebuilt, recorded %d", name, i, len(got), len(rec))
			}
		}
	}
}

func FuzzUndelta(f *testing.F) {
	for _, fx := range translatedFixtures(f) {
		f.Add(deltaAgainst(fx[1], fx[0]), fx[0])
	}
	f.Fuzz(func(t *testing.T, stored, base []byte) {
		got, err := undelta(append(bytes.Clone(deltaMagic), stored...), base)
		if err == nil && len(got) > len(stored)+len(base)*len(stored) {
			t.Fatalf("%d bytes from %d and %d", len(got), len(stored), len(base))
		}
	})
}

func FuzzDeltaRoundTrip(f *testing.F) {
	m := material(1, 600)
	f.Add([]byte(`{"c":"`+m+`"}`), []byte(`<C>`+m+`</C>`))
	f.Fuzz(func(t *testing.T, rec, base []byte) {
		got, err := undelta(deltaAgainst(rec, base), base)
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// BenchmarkDeltaAgainst: the cost of storing a 20 KiB case's record as a
// delta, against SM3 of the same record (a baseline every exchange pays).
func BenchmarkDeltaAgainst(b *testing.B) {
	for name, f := range translatedFixtures(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(f[1])))
			for b.Loop() {
				deltaAgainst(f[1], f[0])
			}
		})
		b.Run(name+"/undelta", func(b *testing.B) {
			d := deltaAgainst(f[1], f[0])
			b.SetBytes(int64(len(f[1])))
			for b.Loop() {
				if _, err := undelta(d, f[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDeltaBoundedWork: bytes chosen so that every run's anchor matches
// everywhere in the base and no run is there whole. The lookups stop when
// their budget (linear in the sizes) is spent, overshooting by at most one
// run's comparison; without it this would look at a thousand runs times
// four million places. The record is kept whole.
func TestDeltaBoundedWork(t *testing.T) {
	base := bytes.Repeat([]byte("A"), 4<<20)
	run := strings.Repeat("A", 300) + "B"
	rec := []byte(`["` + strings.Repeat(run+`","`, 1000) + `"]`)
	budget := 4*len(base) + len(rec)
	if d := deltaWithin(rec, base, &budget); !bytes.Equal(d, rec) {
		t.Errorf("stored as %d bytes, want the record as it is", len(d))
	}
	if budget < -len(run) {
		t.Errorf("the lookups overran their budget by %d bytes", -budget)
	}
}
