package sim_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/sim"
)

// TestMaterialSize: MaterialSize makes every material file of a sample
// exactly that large, with its SM3 right (the case decodes).
func TestMaterialSize(t *testing.T) {
	t.Parallel()
	for _, division := range []string{adapters.DivisionNanhai, adapters.DivisionLiwan} {
		p, _ := served(t, division)
		for _, size := range []int{0, 10, 5000} {
			body, err := p.SampleCase(7, sim.SampleOptions{MaterialSize: size})
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Codec().DecodeCase(body)
			if err != nil {
				t.Fatalf("%s size %d: %v", division, size, err)
			}
			for _, m := range c.Materials {
				if size > 0 && len(m.Content) != size {
					t.Errorf("%s: material %s of %d bytes, want %d", division, m.Code, len(m.Content), size)
				}
				if size == 0 && len(m.Content) > 200 {
					t.Errorf("%s: default material %s of %d bytes", division, m.Code, len(m.Content))
				}
			}
		}
	}
}

// TestForget: a forgetful partner keeps no records but still answers a
// repeat with the first acknowledgement and tells OnReceive once.
func TestForget(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	got := make(chan sim.Received, 4)
	p, err := sim.New(sim.Options{Division: adapters.DivisionNanhai, Signer: pki.Nanhai, Trust: pki.TrustStore(), PublicURL: url,
		Forget: true, OnReceive: func(r sim.Received) { got <- r }})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p}}
	srv.Start()
	defer srv.Close()
	body := deliveredCase(t, adapters.DivisionNanhai, 1)
	var acks []string
	for range 2 {
		a := deliver(t, p, url, "/cases", "k", body, pki.Gateway)
		if a.err != nil || a.ack == nil || !a.ack.Accepted {
			t.Fatalf("answer %d %s %v", a.status, a.body, a.err)
		}
		acks = append(acks, a.ack.CaseNo)
	}
	if acks[0] != acks[1] {
		t.Errorf("a repeat got case number %s, the first %s", acks[1], acks[0])
	}
	if n := len(p.Received()); n != 0 {
		t.Errorf("a forgetful partner holds %d records", n)
	}
	if len(got) != 1 {
		t.Errorf("OnReceive called %d times, want 1", len(got))
	}
}
