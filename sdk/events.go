package sdk

import (
	"encoding/json"
	"fmt"

	"github.com/taskerhq/tasker/sdk/contract"
)

// Event is a custom event a handler publishes with its result
// (docs/observability.md, "Custom events").
type Event = contract.CustomEvent

// Emit returns a custom event named name (dotted lower-case words such as
// order.shipped) with data, a value that encodes as a JSON object, or nil.
// An unencodable data is reported by WithEvents.
func Emit(name string, data any) Event {
	ev := Event{Name: name}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			// Carried as an invalid value so WithEvents reports it.
			b = nil
			ev.Data = json.RawMessage(fmt.Sprintf("%q", "unencodable data: "+err.Error()))
			return ev
		}
		ev.Data = b
	}
	return ev
}

// WithEvents returns result with the custom events under tasker_events, to
// be published when the step completes. result must encode as a JSON object
// (or be nil); the error names what is wrong: a bad name, data that is not
// an object, too many events. A handler returns it as its error to fail the
// step permanently rather than lose the events.
func WithEvents(result any, events ...Event) (any, error) {
	fields := map[string]json.RawMessage{}
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return nil, Permanent(WithCode(fmt.Errorf("result: %v", err), CodeInvalidResult))
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, Permanent(WithCode(fmt.Errorf("a result with events must be a JSON object: %v", err), CodeInvalidResult))
		}
	}
	evs, err := json.Marshal(events)
	if err != nil {
		return nil, Permanent(WithCode(fmt.Errorf("events: %v", err), CodeInvalidResult))
	}
	fields[contract.EventsKey] = evs
	out, _ := json.Marshal(fields) // raw messages that just encoded
	if _, err := contract.CustomEvents(out); err != nil {
		return nil, Permanent(WithCode(err, CodeInvalidResult))
	}
	return json.RawMessage(out), nil
}
