package gateway

import (
	"time"

	"github.com/tongban/tongban/adapters"
	"github.com/tongban/tongban/gateway/store"
)

// ExchangeView is what GET /v1/exchanges/{id} and GET /v1/cases/{caseNo}
// answer: both case numbers, item, mode, delivery state and status history.
type ExchangeView struct {
	ExchangeID string         `json:"exchangeId"`
	From       CaseRef        `json:"from"`
	To         CaseRef        `json:"to"`
	Item       string         `json:"item"`
	Mode       string         `json:"mode"`
	Revision   string         `json:"revision"`
	LogIndex   uint64         `json:"logIndex"`
	AcceptedAt time.Time      `json:"acceptedAt"`
	Delivery   DeliveryView   `json:"delivery"`
	Statuses   []StatusView   `json:"statuses"`
	Deliveries []DeliveryView `json:"deliveries"`
}

// CaseRef is one district's side of an exchange.
type CaseRef struct {
	Partner  string `json:"partner,omitempty"`
	Division string `json:"division"`
	CaseNo   string `json:"caseNo,omitempty"`
}

// DeliveryView is the state of one delivery.
type DeliveryView struct {
	ID          string     `json:"id"`
	To          string     `json:"to"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
}

// StatusView is one status update with both districts' names of its state.
type StatusView struct {
	Seq        int       `json:"seq"`
	State      string    `json:"state"`
	Code       int       `json:"code"`
	NanhaiName string    `json:"nanhaiName"`
	LiwanName  string    `json:"liwanName"`
	At         time.Time `json:"at"`
	From       string    `json:"from"`
	Delivery   string    `json:"delivery,omitempty"`
}

func newExchangeView(ex *store.Exchange, sts []store.StatusUpdate, dls []store.Delivery, partners Partners) *ExchangeView {
	v := &ExchangeView{
		ExchangeID: ex.ID,
		From:       CaseRef{Division: ex.From, CaseNo: ex.SourceCaseNo},
		To:         CaseRef{Division: ex.To, CaseNo: ex.TargetCaseNo},
		Item:       ex.Item, Mode: ex.Mode, Revision: ex.Revision, LogIndex: ex.LogIndex,
		AcceptedAt: ex.CreatedAt.In(chinaTime),
		Delivery:   DeliveryView{ID: ex.ID, To: ex.To, State: ex.DeliveryState, Reason: ex.RefusalReason, LastError: ex.DeliveryDetail},
		Statuses:   []StatusView{},
		Deliveries: []DeliveryView{},
	}
	if p := partners[ex.From]; p != nil {
		v.From.Partner = p.ID
	}
	if p := partners[ex.To]; p != nil {
		v.To.Partner = p.ID
	}
	byID := map[string]string{}
	for _, d := range dls {
		dv := deliveryView(d)
		v.Deliveries = append(v.Deliveries, dv)
		byID[d.ID] = d.State
		if d.Seq == 0 {
			v.Delivery = dv
		}
	}
	for _, st := range sts {
		sv := StatusView{Seq: st.Seq, State: st.State, LiwanName: st.State, At: st.At.In(chinaTime), From: st.From,
			Delivery: byID[seqDeliveryID(ex.ID, st.Seq)]}
		if info, ok := adapters.State(st.State).Info(); ok {
			sv.Code, sv.NanhaiName = info.Code, info.Name
		}
		v.Statuses = append(v.Statuses, sv)
	}
	return v
}

func deliveryView(d store.Delivery) DeliveryView {
	dv := DeliveryView{ID: d.ID, To: d.To, State: d.State, Attempts: d.Attempts, Reason: d.Reason, LastError: d.LastError}
	if d.State == store.StateRetrying && !d.NextAttempt.IsZero() {
		t := d.NextAttempt.In(chinaTime)
		dv.NextAttempt = &t
	}
	return dv
}

var chinaTime = time.FixedZone("CST", 8*3600)
