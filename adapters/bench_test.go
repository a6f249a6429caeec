package adapters_test

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/emmansun/gmsm/sm3"
	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/adapters/liwan"
	"github.com/tongban/tongban/adapters/nanhai"
)

// bigCase is a valid case with four 100 KiB materials.
func bigCase(b *testing.B) adapters.Case {
	r := rand.New(rand.NewPCG(7, 8))
	c := randCase(r)
	for len(c.Materials) > 0 {
		c = randCase(r)
	}
	for i := range 4 {
		content := make([]byte, 100<<10)
		for j := range content {
			content[j] = byte(r.IntN(256))
		}
		sum := sm3.Sum(content)
		c.Materials = append(c.Materials, adapters.Material{
			Code: "M00" + string(rune('1'+i)), Title: "材料", Form: adapters.Original, FileName: "f.pdf",
			SM3: hex.EncodeToString(sum[:]), Size: int64(len(content)), Content: content,
		})
	}
	return c
}

// BenchmarkNanhaiToLiwan decodes and validates a Nanhai case (GBK XML, four
// 100 KiB materials) and writes the Liwan record delivered.
func BenchmarkNanhaiToLiwan(b *testing.B) {
	c := bigCase(b)
	in, err := nanhai.Codec.EncodeCase(&c)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := nanhai.Codec.DecodeCase(in)
		if err != nil {
			b.Fatal(err)
		}
		d := got.ForDelivery(adapters.DivisionNanhai, adapters.ModeRemoteReceipt, "11440103MB2D31010A000105001000", 6)
		if _, err := liwan.Codec.EncodeCase(&d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLiwanToNanhai decodes and validates a Liwan case (JSON, four
// 100 KiB materials) and writes the Nanhai record delivered.
func BenchmarkLiwanToNanhai(b *testing.B) {
	c := bigCase(b)
	c.CaseNo = "LW" + c.AppliedAt.Format("20060102") + "00001"
	c.OwnerDivision = adapters.DivisionNanhai
	in, err := liwan.Codec.EncodeCase(&c)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := liwan.Codec.DecodeCase(in)
		if err != nil {
			b.Fatal(err)
		}
		d := got.ForDelivery(adapters.DivisionLiwan, adapters.ModeRemoteReceipt, "11440605MB2C32020N000114001000", 20)
		if _, err := nanhai.Codec.EncodeCase(&d); err != nil {
			b.Fatal(err)
		}
	}
}
