package contract

import sdkcontract "github.com/taskerhq/tasker/sdk/contract"

// Custom events a handler returns with its result (docs/observability.md,
// "Custom events"): the public SDK's definitions (sdk/contract).
type CustomEvent = sdkcontract.CustomEvent

// The result member and the limits of custom events.
const (
	EventsKey          = sdkcontract.EventsKey
	MaxCustomEvents    = sdkcontract.MaxCustomEvents
	MaxEventNameLength = sdkcontract.MaxEventNameLength
)

// CheckEventName reports why name cannot be a custom event's name, or nil.
func CheckEventName(name string) error { return sdkcontract.CheckEventName(name) }

// CustomEvents returns the custom events of a result, or an error naming
// what is wrong with them.
func CustomEvents(result []byte) ([]CustomEvent, error) { return sdkcontract.CustomEvents(result) }
