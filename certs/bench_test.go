package certs

import (
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	p := newDevPKI(b)
	msg := make([]byte, 400) // about the size of a signature base
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Nanhai.Sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	p := newDevPKI(b)
	msg := make([]byte, 400)
	sig, err := p.Nanhai.Sign(msg)
	if err != nil {
		b.Fatal(err)
	}
	cert := p.Nanhai.Certificate()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifySignature(cert, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	p := newDevPKI(b)
	ts := p.TrustStore()
	id, now := p.Nanhai.KeyID(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ts.Lookup(id, now); err != nil {
			b.Fatal(err)
		}
	}
}
