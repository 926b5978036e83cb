package template

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxConcurrencyKeyBytes bounds a resolved concurrency key.
const MaxConcurrencyKeyBytes = 256

// concurrency reads a step's `concurrency`: an integer (a cap on the step's
// in-flight runs across all tasks, 0 = unlimited) or a mapping
// {limit: N, key: "${context.x}"} capping in-flight runs per key value
// (docs/control-flow.md, "Flow control").
func (b *stepBuild) concurrency(f field) {
	if resolve(f.kv.v).Kind != yaml.MappingNode {
		integer(unlimitedOrMore, func(b *stepBuild, v int) { b.s.Concurrency = v })(b, f)
		return
	}
	if limit, key, ok := keyedConcurrency(f); ok {
		b.s.Concurrency, b.s.ConcurrencyKey = limit, key
	}
}

// keyedConcurrency reads a `concurrency` mapping {limit: N, key: "${context.x}"},
// reporting what is wrong with it on f.
func keyedConcurrency(f field) (int, string, bool) {
	v, ok := f.asMapping()
	if !ok {
		return 0, "", false
	}
	for _, k := range slices.Sorted(maps.Keys(v)) { // sorted: the same input, the same error
		if k != "limit" && k != "key" {
			f.errf("unknown field %q (want limit, key)", k)
			return 0, "", false
		}
	}
	limit, ok := jsonInt(v["limit"])
	if !ok || limit < 1 {
		f.errf("limit must be an integer of 1 or more, got %s", describeJSON(v["limit"]))
		return 0, "", false
	}
	key, _ := v["key"].(string)
	if key == "" {
		f.errf("key must be a non-empty string of ${context.x} placeholders such as \"${context.customer_id}\", got %s", describeJSON(v["key"]))
		return 0, "", false
	}
	if !waitPlaceholder.MatchString(key) {
		f.errf("key %q has no ${context.x} placeholder: a constant key is one cap for all tasks, which `concurrency: %d` already says", key, limit)
		return 0, "", false
	}
	if rest := waitPlaceholder.ReplaceAllString(key, ""); strings.Contains(rest, "${") {
		f.errf("key %q: only ${context.path} placeholders are supported", key)
		return 0, "", false
	}
	return limit, key, true
}

// taskConcurrency reads a template's top-level `concurrency`: an integer
// caps the running tasks of the template (0 = unlimited), a mapping
// {limit, key} caps them per key value (docs/control-flow.md, "Task
// concurrency").
func (p *parser) taskConcurrency(t *Template, kv *pair) {
	f := field{p: p, kv: *kv, name: kv.key}
	if resolve(kv.v).Kind != yaml.MappingNode {
		integer(unlimitedOrMore, func(t *Template, v int) { t.Concurrency = v })(t, f)
		return
	}
	if limit, key, ok := keyedConcurrency(f); ok {
		t.Concurrency, t.ConcurrencyKey = limit, key
	}
}

// ResolveConcurrencyKey returns the key value of a step with a keyed
// concurrency cap for a task's context: its placeholders replaced by the
// context's values. A missing or non-scalar value is an error naming the
// step, so the task is refused rather than run unlimited.
func (s *Step) ResolveConcurrencyKey(taskContext json.RawMessage) (string, error) {
	v, err := expandPlaceholders(s.ConcurrencyKey, taskContext)
	if err != nil {
		return "", fmt.Errorf("step %s: concurrency.key: %w", s.Name, err)
	}
	if len(v) > MaxConcurrencyKeyBytes {
		return "", fmt.Errorf("step %s: concurrency.key resolves to %d bytes, over %d", s.Name, len(v), MaxConcurrencyKeyBytes)
	}
	return v, nil
}

// ResolveConcurrencyKey returns the key value of a template with a keyed
// task concurrency cap for a task's context; like Step.ResolveConcurrencyKey,
// a missing or non-scalar value is an error naming the field.
func (t *Template) ResolveConcurrencyKey(taskContext json.RawMessage) (string, error) {
	v, err := expandPlaceholders(t.ConcurrencyKey, taskContext)
	if err != nil {
		return "", fmt.Errorf("concurrency.key: %w", err)
	}
	if len(v) > MaxConcurrencyKeyBytes {
		return "", fmt.Errorf("concurrency.key resolves to %d bytes, over %d", len(v), MaxConcurrencyKeyBytes)
	}
	return v, nil
}

// MaxRatePerSecond is the highest rate_limit.per_second a template may set;
// above it a rate limit stops meaning anything the scheduler can enforce.
const MaxRatePerSecond = 10_000

// RateLimit caps how often a step starts per key value: a token bucket of
// Burst tokens refilled at PerSecond (docs/control-flow.md, "Rate limits").
type RateLimit struct {
	PerSecond float64
	Burst     int
	// Key is a string of ${context.path} placeholders resolved when a
	// task is created (ResolveRateLimitKey); "" = one bucket for every
	// task of the template.
	Key string
}

// rateLimit reads a step's `rate_limit: {per_second: R, burst: B, key: …}`.
func (b *stepBuild) rateLimit(f field) {
	v, ok := f.asMapping()
	if !ok {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(v)) { // sorted: the same input, the same error
		if k != "per_second" && k != "burst" && k != "key" {
			f.errf("unknown field %q (want per_second, burst, key)", k)
			return
		}
	}
	r, ok := jsonNumber(v["per_second"])
	if !ok || r <= 0 || r > MaxRatePerSecond {
		f.errf("per_second must be a number above 0 and at most %d (0.5 is one start every 2 s), got %s", MaxRatePerSecond, describeJSON(v["per_second"]))
		return
	}
	rl := &RateLimit{PerSecond: r, Burst: max(1, int(math.Ceil(r)))}
	if raw, given := v["burst"]; given {
		n, ok := jsonInt(raw)
		if !ok || n < 1 || n > MaxRatePerSecond {
			f.errf("burst must be an integer from 1 to %d, got %s", MaxRatePerSecond, describeJSON(raw))
			return
		}
		rl.Burst = n
	}
	if raw, given := v["key"]; given {
		key, _ := raw.(string)
		switch {
		case key == "":
			f.errf("key must be a non-empty string of ${context.x} placeholders such as \"${context.customer_id}\", got %s", describeJSON(raw))
			return
		case !waitPlaceholder.MatchString(key):
			f.errf("key %q has no ${context.x} placeholder: without a key the step already has one bucket for all tasks", key)
			return
		case strings.Contains(waitPlaceholder.ReplaceAllString(key, ""), "${"):
			f.errf("key %q: only ${context.path} placeholders are supported", key)
			return
		}
		rl.Key = key
	}
	b.s.RateLimit = rl
}

// ResolveRateLimitKey returns the key value of a step with a keyed rate
// limit for a task's context, as ResolveConcurrencyKey does.
func (s *Step) ResolveRateLimitKey(taskContext json.RawMessage) (string, error) {
	if s.RateLimit == nil || s.RateLimit.Key == "" {
		return "", nil
	}
	v, err := expandPlaceholders(s.RateLimit.Key, taskContext)
	if err != nil {
		return "", fmt.Errorf("step %s: rate_limit.key: %w", s.Name, err)
	}
	if len(v) > MaxConcurrencyKeyBytes {
		return "", fmt.Errorf("step %s: rate_limit.key resolves to %d bytes, over %d", s.Name, len(v), MaxConcurrencyKeyBytes)
	}
	return v, nil
}
