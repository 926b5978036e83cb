package examples

import (
	"context"
	"fmt"

	"github.com/taskerhq/tasker/sdk"
)

// Trip context (travel/book_trip, a saga: docs/control-flow.md):
//
//	{"trip_id": "…", "traveller_email": "…", "flight": "LH 400",
//	 "hotel": "…", "nights": 3, "amount": 84000,
//	 "fail_step": "reserve_hotel|charge_card"}
//
// fail_step makes that step fail permanently (no rooms, card declined), so
// the compensation steps (trigger_rule: one_failed) undo what was booked.

// failIf fails permanently when the context names this step in fail_step.
func failIf(in sdk.Input, d doc, code, what string) error {
	if d.str("fail_step") == in.Step() {
		return permanent(code, "%s (fail_step: %s)", what, in.Step())
	}
	return nil
}

func tripID(d doc) (string, error) {
	id := d.str("trip_id")
	if id == "" {
		return "", permanent("missing_trip_id", "trip context has no trip_id")
	}
	return id, nil
}

func reserveFlight(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	id, err := tripID(d)
	if err != nil {
		return nil, err
	}
	if err := failIf(in, d, "sold_out", "no seats left on the flight"); err != nil {
		return nil, err
	}
	return map[string]any{
		"flight_reservation": stableID("fl_", in, "flight"), "trip_id": id,
		"flight": d.str("flight"), "reserved_at": now(),
	}, ctxCheck(ctx)
}

func reserveHotel(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	id, err := tripID(d)
	if err != nil {
		return nil, err
	}
	if err := failIf(in, d, "no_rooms", "no rooms left at the hotel"); err != nil {
		return nil, err
	}
	return map[string]any{
		"hotel_reservation": stableID("ht_", in, "hotel"), "trip_id": id,
		"hotel": d.str("hotel"), "nights": d.integer(1, "nights"), "reserved_at": now(),
	}, ctxCheck(ctx)
}

func chargeCard(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	if _, ok := parentWith(in, "flight_reservation"); !ok {
		return nil, permanent("missing_input", "no parent result carries a flight_reservation")
	}
	if _, ok := parentWith(in, "hotel_reservation"); !ok {
		return nil, permanent("missing_input", "no parent result carries a hotel_reservation")
	}
	if err := failIf(in, d, "card_declined", "the card was declined"); err != nil {
		return nil, err
	}
	amount, _ := d.num("amount")
	return map[string]any{
		"charge_id": stableID("ch_", in, "charge"), "amount": int64(amount),
		"idempotency_key": in.IdempotencyKey(), "charged_at": now(),
	}, ctxCheck(ctx)
}

func confirmTrip(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	p, ok := parentWith(in, "charge_id")
	if !ok {
		return nil, permanent("missing_input", "no parent result carries a charge_id")
	}
	return map[string]any{
		"confirmed": true, "charge_id": p["charge_id"], "to": d.str("traveller_email"),
		"message_id": stableID("msg_", in, "trip_confirmation"),
	}, ctxCheck(ctx)
}

// cancelReservation is a compensation: it undoes the reservation a parent
// made (the parent result holding key), or reports that there was none.
func cancelReservation(key, what string) sdk.Handler {
	return func(ctx context.Context, in sdk.Input) (any, error) {
		p, ok := parentWith(in, key)
		if !ok {
			return map[string]any{"cancelled": false, "reason": fmt.Sprintf("no %s was reserved", what)}, nil
		}
		return map[string]any{
			"cancelled": true, key: p[key], "cancellation_id": stableID("cx_", in, what), "cancelled_at": now(),
		}, ctxCheck(ctx)
	}
}
