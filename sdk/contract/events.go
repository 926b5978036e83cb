package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// EventsKey is the member of a handler's result object that carries the
// custom events it publishes (docs/observability.md, "Custom events"):
//
//	{"order_id": "A-1", "tasker_events": [{"name": "order.shipped", "data": {"carrier": "ups"}}]}
//
// The events are published when the step completes, to the same places as
// lifecycle events (logs, EventBridge, webhook subscriptions); the member
// stays in the stored result.
const EventsKey = "tasker_events"

// Limits on custom events.
const (
	MaxCustomEvents    = 20
	MaxEventNameLength = 100
)

// CustomEvent is one event a handler publishes.
type CustomEvent struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data,omitempty"`
}

// eventName is a dotted lower-case name of at least two parts, such as
// order.shipped or billing.invoice_paid.
var eventName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// reservedPrefixes are the namespaces of the lifecycle catalogue.
var reservedPrefixes = []string{"task.", "step.", "scheduler.", "tasker.", "webhook."}

// CheckEventName reports why name cannot be a custom event's name, or nil.
func CheckEventName(name string) error {
	if len(name) > MaxEventNameLength {
		return fmt.Errorf("event name %.40q… is %d bytes, over %d", name, len(name), MaxEventNameLength)
	}
	if !eventName.MatchString(name) {
		return fmt.Errorf("event name %q: want dotted lower-case words such as order.shipped", name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("event name %q: the %s* names are Tasker's lifecycle events", name, p)
		}
	}
	return nil
}

// CustomEvents returns the custom events of a result (nil when it has no
// tasker_events member), or an error naming what is wrong with them.
func CustomEvents(result json.RawMessage) ([]CustomEvent, error) {
	result = bytes.TrimLeft(result, " \t\r\n")
	if len(result) == 0 || result[0] != '{' || !bytes.Contains(result, []byte(`"`+EventsKey+`"`)) {
		return nil, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(result, &probe); err != nil {
		return nil, nil
	}
	raw, ok := probe[EventsKey]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var evs []CustomEvent
	if err := json.Unmarshal(raw, &evs); err != nil {
		return nil, fmt.Errorf("%s: want an array of {\"name\", \"data\"} objects: %v", EventsKey, err)
	}
	if len(evs) > MaxCustomEvents {
		return nil, fmt.Errorf("%s: %d events, over the limit of %d", EventsKey, len(evs), MaxCustomEvents)
	}
	for i, e := range evs {
		if err := CheckEventName(e.Name); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", EventsKey, i, err)
		}
		if d := bytes.TrimSpace(e.Data); len(d) > 0 && d[0] != '{' && string(d) != "null" {
			return nil, fmt.Errorf("%s[%d] (%s): data must be a JSON object", EventsKey, i, e.Name)
		}
	}
	return evs, nil
}
