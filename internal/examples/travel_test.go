package examples

import (
	"strings"
	"testing"
)

const tripContext = `{"trip_id": "trip-42", "traveller_email": "ada@example.com", "flight": "LH 400",
	"hotel": "Hotel Adlon", "nights": 3, "amount": 84000%s}`

func trip(extra string) string { return strings.Replace(tripContext, "%s", extra, 1) }

// The happy path books, charges and confirms; the compensations find
// their reservations and cancel them (as they would after a failure).
func TestTripFlow(t *testing.T) {
	t.Parallel()
	f := newFlow(t, trip(""))
	fl := f.ok("reserve_flight", "travel.reserve_flight")
	ht := f.ok("reserve_hotel", "travel.reserve_hotel")
	ch := f.ok("charge_card", "travel.charge_card", "reserve_flight", "reserve_hotel")
	if ch["amount"] != float64(84000) || !strings.HasPrefix(ch["charge_id"].(string), "ch_") {
		t.Errorf("charge = %v", ch)
	}
	if c := f.ok("confirm_trip", "travel.confirm_trip", "charge_card"); c["confirmed"] != true || c["to"] != "ada@example.com" {
		t.Errorf("confirm = %v", c)
	}
	cf := f.ok("cancel_flight", "travel.cancel_flight", "reserve_flight", "reserve_hotel")
	if cf["cancelled"] != true || cf["flight_reservation"] != fl["flight_reservation"] {
		t.Errorf("cancel_flight = %v, flight %v", cf, fl)
	}
	chx := f.ok("cancel_hotel", "travel.cancel_hotel", "reserve_hotel")
	if chx["cancelled"] != true || chx["hotel_reservation"] != ht["hotel_reservation"] {
		t.Errorf("cancel_hotel = %v", chx)
	}
}

// fail_step fails the named step permanently; a compensation with nothing
// to undo says so instead of failing.
func TestTripFailures(t *testing.T) {
	t.Parallel()
	f := newFlow(t, trip(`, "fail_step": "reserve_hotel"`))
	f.ok("reserve_flight", "travel.reserve_flight")
	if he := f.fail("reserve_hotel", "travel.reserve_hotel", 1); !he.Permanent || he.Code != "no_rooms" {
		t.Errorf("reserve_hotel error = %+v", he)
	}
	if c := f.ok("cancel_hotel", "travel.cancel_hotel", "reserve_flight"); c["cancelled"] != false || c["reason"] != "no hotel was reserved" {
		t.Errorf("cancel_hotel without a reservation = %v", c)
	}
	f = newFlow(t, trip(`, "fail_step": "charge_card"`))
	f.ok("reserve_flight", "travel.reserve_flight")
	f.ok("reserve_hotel", "travel.reserve_hotel")
	if he := f.fail("charge_card", "travel.charge_card", 1, "reserve_flight", "reserve_hotel"); he.Code != "card_declined" {
		t.Errorf("charge_card error = %+v", he)
	}
	if he := newFlow(t, `{}`).fail("reserve_flight", "travel.reserve_flight", 1); he.Code != "missing_trip_id" {
		t.Errorf("no trip id: %+v", he)
	}
}

func TestMediaProbeAndPublish(t *testing.T) {
	t.Parallel()
	f := newFlow(t, `{"video_id": "v1", "source_url": "s3://in/v1.mov", "formats": ["720p"]}`)
	if p := f.ok("probe", "media.probe"); p["video_id"] != "v1" || p["width"] != float64(1920) {
		t.Errorf("probe = %v", p)
	}
	f.results["transcode"] = []byte(`{"outputs": [{"format": "720p", "url": "s3://out/v1-720p.mp4"}]}`)
	if p := f.ok("publish", "media.publish", "transcode"); p["published"] != true {
		t.Errorf("publish = %v", p)
	}
	if he := newFlow(t, `{"video_id": "v1"}`).fail("probe", "media.probe", 1); he.Code != "invalid_input" {
		t.Errorf("probe without source: %+v", he)
	}
	if he := f.fail("submit", "media.submit_transcode", 1); he.Code != "no_callback_token" {
		t.Errorf("submit without a callback token: %+v", he)
	}
}
