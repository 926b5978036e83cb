package examples

import (
	"context"
	"strings"

	"github.com/taskerhq/tasker/sdk"
)

// Refund context (amounts in cents, as in the Rails example):
//
//	{"payment_id": "pay_…", "refund_amount": 2500, "original_amount": 10000,
//	 "refund_reason": "customer_request|fraud|system_error|chargeback",
//	 "partial_refund": false, "customer_email": "…", "simulate_gateway_failures": N}

var refundReasons = map[string]bool{"customer_request": true, "fraud": true, "system_error": true, "chargeback": true}

type refund struct {
	PaymentID      string `json:"payment_id"`
	RefundCents    int64  `json:"refund_amount"`
	OriginalCents  int64  `json:"original_amount"`
	Reason         string `json:"refund_reason"`
	Partial        bool   `json:"partial"`
	Eligible       bool   `json:"eligible"`
	Currency       string `json:"currency"`
	CustomerEmail  string `json:"customer_email,omitempty"`
	RefundableDays int    `json:"refundable_days"`
}

func refundRequest(in sdk.Input) (*refund, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	r := &refund{
		PaymentID:     d.str("payment_id", "payment.id"),
		Reason:        strings.ToLower(d.str("refund_reason", "reason")),
		CustomerEmail: strings.ToLower(d.str("customer_email", "customer.email", "email")),
		Currency:      strings.ToUpper(d.str("currency")),
		Partial:       d.boolean("partial_refund"),
	}
	if r.PaymentID == "" {
		return nil, permanent("missing_payment_id", "refund request has no payment_id")
	}
	amount, ok := d.num("refund_amount", "amount")
	if !ok || amount <= 0 || amount != float64(int64(amount)) {
		return nil, permanent("invalid_amount", "refund_amount must be a positive whole number of cents")
	}
	r.RefundCents = int64(amount)
	if orig, ok := d.num("original_amount"); ok && orig > 0 {
		r.OriginalCents = int64(orig)
	} else {
		// Ask the "gateway": a stable original amount at least the refund.
		r.OriginalCents = r.RefundCents + int64(hashInt(20000, "original", r.PaymentID))
	}
	if r.Reason == "" {
		r.Reason = "customer_request"
	}
	if r.Currency == "" {
		r.Currency = "USD"
	}
	r.RefundableDays = 90
	return r, nil
}

func validateRefund(ctx context.Context, in sdk.Input) (any, error) {
	r, err := refundRequest(in)
	if err != nil {
		return nil, err
	}
	if !refundReasons[r.Reason] {
		return nil, permanent("invalid_reason", "refund_reason %q is not one of customer_request, fraud, system_error, chargeback", r.Reason)
	}
	if r.RefundCents > r.OriginalCents {
		return nil, permanent("exceeds_original", "refund of %d cents exceeds the original payment of %d cents", r.RefundCents, r.OriginalCents)
	}
	if r.RefundCents < r.OriginalCents {
		r.Partial = true
	}
	r.Eligible = true
	return r, nil
}

// validatedRefund returns the validated refund from a parent result, or
// validates the context.
func validatedRefund(in sdk.Input) (*refund, error) {
	if p, ok := parentWith(in, "payment_id", "eligible"); ok {
		var r refund
		if err := remarshal(p, &r); err == nil {
			return &r, nil
		}
	}
	v, err := validateRefund(context.Background(), in)
	if err != nil {
		return nil, err
	}
	return v.(*refund), nil
}

func processRefund(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	if err := simulatedFailure(in, d, "simulate_gateway_failures", "gateway_unavailable", "payment gateway unavailable"); err != nil {
		return nil, err
	}
	r, err := validatedRefund(in)
	if err != nil {
		return nil, err
	}
	if err := ctxCheck(ctx); err != nil {
		return nil, err
	}
	return map[string]any{
		"refund_id":       stableID("re_", in, "refund"),
		"payment_id":      r.PaymentID,
		"amount":          r.RefundCents,
		"currency":        r.Currency,
		"status":          "succeeded",
		"gateway":         in.ConfigString("gateway", "simulated"),
		"idempotency_key": in.IdempotencyKey(),
		"processed_at":    now(),
	}, nil
}

func updateRecords(ctx context.Context, in sdk.Input) (any, error) {
	p, ok := parentWith(in, "refund_id", "payment_id")
	if !ok {
		return nil, permanent("missing_input", "no parent result of step %q carries a refund (refund_id)", in.Step())
	}
	amount := p["amount"]
	status := "partially_refunded"
	if r, err := validatedRefund(in); err == nil && !r.Partial {
		status = "refunded"
	}
	return map[string]any{
		"record_id":      stableID("rec_", in, "records"),
		"payment_id":     p["payment_id"],
		"refund_id":      p["refund_id"],
		"payment_status": status,
		"ledger_entries": []map[string]any{
			{"account": "refunds_payable", "debit": amount},
			{"account": "customer_receivable", "credit": amount},
		},
		"updated_at": now(),
	}, nil
}

func notifyCustomer(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	to := strings.ToLower(d.str("customer_email", "customer.email", "email"))
	if to == "" {
		return map[string]any{"notified": false, "reason": "no customer email on file"}, nil
	}
	if !validEmail(to) {
		return nil, permanent("invalid_email", "customer email %q is not valid", to)
	}
	out := map[string]any{
		"notified":   true,
		"message_id": stableID("msg_", in, "refund_notice"),
		"to":         to,
		"template":   in.ConfigString("notification_type", "refund_confirmation"),
		"sent_at":    now(),
	}
	if p, ok := parentWith(in, "refund_id"); ok {
		out["refund_id"] = p["refund_id"]
	}
	return out, nil
}

// restockItems puts refunded items back into stock unless the context says
// not to (restock: false).
func restockItems(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	if err := ctxCheck(ctx); err != nil {
		return nil, err
	}
	if v, ok := d.get("restock"); ok && v == false {
		return map[string]any{"restocked": false, "reason": "restock disabled for this refund"}, nil
	}
	return map[string]any{
		"restocked":    true,
		"order_id":     d.str("order_id"),
		"movement_id":  stableID("mv_", in, "restock"),
		"restocked_at": now(),
	}, nil
}
