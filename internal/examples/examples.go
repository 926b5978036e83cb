// Package examples holds the Go step handlers behind the shipped example
// templates (templates/): an e-commerce order, customer onboarding, a data
// pipeline and a payment refund. They are self-contained — no network —
// but behave like real handlers: they validate their input, read parent
// results, derive stable ids from the task (so a retried attempt returns
// the same ids) and fail permanently or retryably as a real integration
// would.
//
// Handlers read their input leniently (e.g. "items" or Rails' "cart_items")
// and find parent results by what they contain, not by step name, so
// templates may name their steps freely.
package examples

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

type entry struct {
	name string
	h    sdk.Handler
}

// all lists every example handler, in template order.
var all = []entry{
	{"ecommerce.validate_order", validateOrder},
	{"ecommerce.fraud_check", fraudCheck},
	{"ecommerce.process_payment", processPayment},
	{"ecommerce.update_inventory", updateInventory},
	{"ecommerce.create_shipment", createShipment},
	{"ecommerce.send_confirmation", sendConfirmation},

	{"onboarding.create_account", createAccount},
	{"onboarding.send_welcome_email", sendWelcomeEmail},
	{"onboarding.provision_workspace", provisionWorkspace},
	{"onboarding.setup_billing", setupBilling},
	{"onboarding.activate", activate},

	{"data.extract", extract},
	{"data.transform_clean", transformClean},
	{"data.transform_enrich", transformEnrich},
	{"data.transform_aggregate", transformAggregate},
	{"data.validate", validateData},
	{"data.load", load},
	{"data.notify", notify},
	{"data.list_files", listFiles},
	{"data.convert_file", convertFile},
	{"data.summarise_files", summariseFiles},

	{"payments.validate_refund", validateRefund},
	{"payments.process_refund", processRefund},
	{"payments.restock_items", restockItems},
	{"payments.update_records", updateRecords},
	{"payments.notify_customer", notifyCustomer},

	{"travel.reserve_flight", reserveFlight},
	{"travel.reserve_hotel", reserveHotel},
	{"travel.charge_card", chargeCard},
	{"travel.confirm_trip", confirmTrip},
	{"travel.cancel_flight", cancelReservation("flight_reservation", "flight")},
	{"travel.cancel_hotel", cancelReservation("hotel_reservation", "hotel")},

	{"media.probe", probeVideo},
	{"media.submit_transcode", submitTranscode},
	{"media.publish", publishVideo},
}

// Names lists the handler names Register adds, in template order.
func Names() []string {
	out := make([]string, len(all))
	for i, e := range all {
		out[i] = e.name
	}
	return out
}

// Register adds every example handler to reg. It fails if any name is
// already registered (e.g. when called twice on one registry).
func Register(reg *sdk.Registry) error {
	for _, e := range all {
		if err := reg.Register(e.name, e.h); err != nil {
			return fmt.Errorf("examples: %w", err)
		}
	}
	return nil
}

// ---- helpers shared by the handlers ----

// doc is a decoded JSON object with lenient accessors.
type doc map[string]any

// contextDoc decodes the task context (an empty doc when absent).
func contextDoc(in sdk.Input) (doc, error) {
	var d doc
	if err := in.Context(&d); err != nil {
		return nil, sdk.Permanent(sdk.WithCode(err, "invalid_input"))
	}
	if d == nil {
		d = doc{}
	}
	return d, nil
}

// get resolves the first present dotted path.
func (d doc) get(paths ...string) (any, bool) {
	for _, p := range paths {
		var cur any = map[string]any(d)
		ok := true
		for _, seg := range strings.Split(p, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				ok = false
				break
			}
			if cur, ok = m[seg]; !ok {
				break
			}
		}
		if ok && cur != nil {
			return cur, true
		}
	}
	return nil, false
}

func (d doc) str(paths ...string) string {
	v, ok := d.get(paths...)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func (d doc) num(paths ...string) (float64, bool) {
	v, ok := d.get(paths...)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

func (d doc) integer(def int, paths ...string) int {
	if f, ok := d.num(paths...); ok {
		return int(f)
	}
	return def
}

func (d doc) boolean(paths ...string) bool {
	v, _ := d.get(paths...)
	b, _ := v.(bool)
	return b
}

func (d doc) list(paths ...string) []any {
	v, _ := d.get(paths...)
	l, _ := v.([]any)
	return l
}

// parentWith finds the parent result that is an object holding every key,
// preferring step names in sorted order for determinism.
func parentWith(in sdk.Input, keys ...string) (doc, bool) {
	results := in.Results()
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var d doc
		if json.Unmarshal(results[n], &d) != nil || d == nil {
			continue
		}
		has := true
		for _, k := range keys {
			if _, ok := d[k]; !ok {
				has = false
				break
			}
		}
		if has {
			return d, true
		}
	}
	return nil, false
}

// stableID derives an id that is the same for every attempt of a step of
// a task: retries are idempotent.
func stableID(prefix string, in sdk.Input, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(in.TaskID().String()))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return prefix + hex.EncodeToString(h.Sum(nil))[:16]
}

// hashInt is a deterministic pseudo-random number in [0, n).
func hashInt(n int, parts ...string) int {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	v := uint64(0)
	for _, b := range sum[:8] {
		v = v<<8 | uint64(b)
	}
	return int(v % uint64(n))
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// cents converts dollars to whole cents.
func cents(dollars float64) int64 { return int64(math.Round(dollars * 100)) }

// dollars converts cents to dollars rounded to the cent.
func dollars(c int64) float64 { return float64(c) / 100 }

func permanent(code, format string, args ...any) error {
	return sdk.Permanent(sdk.WithCode(fmt.Errorf(format, args...), code))
}

// simulatedFailure fails retryably while the attempt is at most the
// context's flag value (a demo aid: "simulate_payment_failures": 2 makes
// the first two attempts fail).
func simulatedFailure(in sdk.Input, d doc, flag, code, what string) error {
	n := d.integer(0, flag)
	if n > 0 && in.Attempt() <= n {
		return sdk.WithCode(fmt.Errorf("%s (simulated failure %d of %d)", what, in.Attempt(), n), code)
	}
	return nil
}

func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".") && !strings.ContainsAny(s, " \t\r\n") &&
		!strings.HasSuffix(s, ".")
}

// ctxCheck returns the context error if the attempt was cancelled.
func ctxCheck(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("step interrupted: %w", err)
	}
	return nil
}

// configFloat reads a numeric step config value.
func configFloat(in sdk.Input, key string, def float64) float64 {
	f, err := strconv.ParseFloat(in.ConfigString(key, ""), 64)
	if err != nil {
		return def
	}
	return f
}

// remarshal converts between JSON-compatible shapes.
func remarshal(src, dst any) error {
	b, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}
