package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/taskerhq/tasker/sdk/contract"
)

// Input is what a Handler receives: the decoded invocation payload
// (docs/architecture.md, "Handler contract") with typed accessors. The zero Input is an empty payload.
type Input struct {
	p   *contract.Payload
	raw []byte
}

// NewInput wraps a payload, e.g. to unit-test a Handler without going
// through Run.
func NewInput(p contract.Payload) Input {
	return Input{p: &p}
}

func newInputRaw(p *contract.Payload, raw []byte) Input { return Input{p: p, raw: raw} }

func (in Input) payload() *contract.Payload {
	if in.p == nil {
		return &contract.Payload{}
	}
	return in.p
}

// Payload returns the decoded invocation payload.
func (in Input) Payload() contract.Payload { return *in.payload() }

// Raw returns the invocation payload as JSON: the bytes received when the
// Input came from Run, otherwise the payload re-encoded.
func (in Input) Raw() []byte {
	if in.raw != nil {
		return in.raw
	}
	b, err := json.Marshal(in.payload())
	if err != nil {
		return []byte("{}")
	}
	return b
}

// Meta returns the "tasker" object of the payload.
func (in Input) Meta() contract.Meta { return in.payload().Tasker }

// TaskID is the task's id.
func (in Input) TaskID() uuid.UUID { return in.payload().Tasker.TaskID }

// StepID is the step's id.
func (in Input) StepID() uuid.UUID { return in.payload().Tasker.StepID }

// Step is the step's name in its template.
func (in Input) Step() string { return in.payload().Tasker.Step }

// Handler is the handler name the step was dispatched to.
func (in Input) Handler() string { return in.payload().Tasker.Handler }

// Attempt is the attempt number, starting at 1.
func (in Input) Attempt() int { return in.payload().Tasker.Attempt }

// MaxAttempts is the number of attempts the step is allowed.
func (in Input) MaxAttempts() int { return in.payload().Tasker.MaxAttempts }

// IdempotencyKey identifies the step's side effects: "<task_id>/<step>",
// the same for every automatic retry, so a service that already did the
// work for a lost attempt can recognise the retry; "/<n>" is appended after
// the n-th operator retry, which asks for the work to be done again
// (contract.IdempotencyKey). Execution is at-least-once: pass it to the
// services you call (tasker.http sends it as Idempotency-Key) or record it
// with your side effect. Attempt tells the attempts apart.
func (in Input) IdempotencyKey() string { return in.payload().Tasker.IdempotencyKey }

// CorrelationID is the task's correlation id.
func (in Input) CorrelationID() string { return in.payload().Tasker.CorrelationID }

// Deadline is when the engine stops waiting for this attempt; zero if
// unknown. Run also applies it to the handler's context.
func (in Input) Deadline() time.Time { return in.payload().Tasker.Deadline }

// Context decodes the task context into dst. An absent context leaves dst
// unchanged.
func (in Input) Context(dst any) error {
	if err := decodeRaw(in.payload().Context, dst); err != nil {
		return fmt.Errorf("decode task context: %w", err)
	}
	return nil
}

// ContextValue looks up a dotted path such as "customer.email" or
// "items.0.sku" in the task context. Values are as encoding/json decodes
// them into any (numbers are float64). It reports false when any segment is
// absent.
func (in Input) ContextValue(path string) (any, bool) {
	return lookupPath(in.payload().Context, path)
}

// Config decodes the step's handler config into dst. An absent config
// leaves dst unchanged.
func (in Input) Config(dst any) error {
	if err := decodeRaw(in.payload().Config, dst); err != nil {
		return fmt.Errorf("decode step config: %w", err)
	}
	return nil
}

// ConfigString returns the top-level config value key as a string: strings
// as they are, numbers and booleans in their JSON spelling, def when the key
// is absent, null or an object or array.
func (in Input) ConfigString(key, def string) string {
	v, ok := lookupPath(in.payload().Config, key)
	if !ok {
		return def
	}
	switch v.(type) {
	case string, float64, bool:
		return scalarString(v)
	default:
		return def
	}
}

// Result decodes the result of the parent step named step into dst. It
// fails, naming the step, when the payload carries no such result (the step
// is not a parent of this one).
func (in Input) Result(step string, dst any) error {
	raw, ok := in.payload().Results[step]
	if !ok {
		return fmt.Errorf("no result for step %q in this invocation (is it a parent of %q?)", step, in.Step())
	}
	if err := decodeRaw(raw, dst); err != nil {
		return fmt.Errorf("decode result of step %q: %w", step, err)
	}
	return nil
}

// Results returns the parents' results by step name. The map is the
// Input's own; do not modify it.
func (in Input) Results() map[string]json.RawMessage {
	r := in.payload().Results
	if r == nil {
		return map[string]json.RawMessage{}
	}
	return r
}

func decodeRaw(raw json.RawMessage, dst any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	return json.Unmarshal(raw, dst)
}

// lookupPath resolves a dotted path in a JSON document. Segments index
// objects by key and arrays by decimal index.
func lookupPath(raw json.RawMessage, path string) (any, bool) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, false
	}
	var cur any
	if err := json.Unmarshal(raw, &cur); err != nil {
		return nil, false
	}
	if path == "" {
		return cur, true
	}
	for _, seg := range strings.Split(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			v, ok := node[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			cur = node[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// MapItem decodes the item of an instance of a map step into dst and
// returns its index (docs/control-flow.md, "Map"); ok is false when the
// invocation is not a map instance.
func (in Input) MapItem(dst any) (index int, ok bool, err error) {
	raw := in.payload().Map
	if len(raw) == 0 {
		return 0, false, nil
	}
	var m struct {
		Index int             `json:"index"`
		Item  json.RawMessage `json:"item"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, true, fmt.Errorf("decode map item: %w", err)
	}
	if err := decodeRaw(m.Item, dst); err != nil {
		return m.Index, true, fmt.Errorf("decode map item %d: %w", m.Index, err)
	}
	return m.Index, true, nil
}
