package template

import (
	"encoding/json"
	"fmt"
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
	for k := range v {
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
