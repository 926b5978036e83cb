package template

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// The template format as data: one fieldSpec per field of a mapping (the
// template, a step, a step's retry), shared by the native spelling and the
// Rails Tasker aliases (docs/templates.md, "Rails Tasker templates"). The
// parser walks a mapping in document order and looks every key up in its
// table; the table says whether the key is known, which field it spells,
// and how its value is read and applied.

// fieldSpec is one field of a mapping. T is what the field is applied to.
type fieldSpec[T any] struct {
	name    string   // native spelling, also the canonical name
	aliases []string // Rails spellings of the same field
	// ignored fields are accepted but mean nothing here; they are listed in
	// Template.Ignored and never suggested for a misspelt key.
	ignored bool
	// merge: every spelling given is applied (the Rails engine takes the
	// union of depends_on_step and depends_on_steps). Otherwise a second
	// spelling of the field is refused as a conflict.
	merge bool
	// apply decodes, validates and sets the value; nil when the field is
	// read elsewhere.
	apply func(dst *T, f field)
}

// fieldTable is the set of fields of one kind of mapping.
type fieldTable[T any] struct {
	specs    []fieldSpec[T]
	spelling map[string]int // every spelling -> index in specs
	known    []string       // spellings of the fields that are not ignored, in table order
}

func newFieldTable[T any](specs ...fieldSpec[T]) *fieldTable[T] {
	t := &fieldTable[T]{specs: specs, spelling: map[string]int{}}
	for i, s := range specs {
		for _, k := range append([]string{s.name}, s.aliases...) {
			if _, dup := t.spelling[k]; dup {
				panic("template: field spelling " + k + " given twice")
			}
			t.spelling[k] = i
			if !s.ignored {
				t.known = append(t.known, k)
			}
		}
	}
	return t
}

// lookup returns the field that key spells.
func (t *fieldTable[T]) lookup(key string) (*fieldSpec[T], bool) {
	i, ok := t.spelling[key]
	if !ok {
		return nil, false
	}
	return &t.specs[i], true
}

// field is one key/value as given in the file, with what error messages
// need to name it.
type field struct {
	p    *parser
	kv   pair
	step string // step label, "" outside a step
	name string // as spelled in the file, with its path: "handler_class", "retry.jitter"
}

func (f field) line() int { return f.kv.v.Line }

// errf reports a problem with the field's value.
func (f field) errf(format string, args ...any) {
	f.p.errf(f.kv.v.Line, f.step, f.name, format, args...)
}

// decoded reports bad, the reason a value has the wrong type, if any.
func decoded[V any](f field, v V, bad string) (V, bool) {
	if bad != "" {
		f.errf("%s", bad)
		return v, false
	}
	return v, true
}

func (f field) asString() (string, bool) {
	v, bad := scalarString(f.kv.v)
	return decoded(f, v, bad)
}

func (f field) asInt() (int, bool) {
	v, bad := scalarInt(f.kv.v)
	return decoded(f, v, bad)
}

func (f field) asFloat() (float64, bool) {
	v, bad := scalarFloat(f.kv.v)
	return decoded(f, v, bad)
}

func (f field) asBool() (bool, bool) {
	v, bad := scalarBool(f.kv.v)
	return decoded(f, v, bad)
}

func (f field) asList() ([]string, bool) {
	v, bad := stringList(f.kv.v)
	return decoded(f, v, bad)
}

// asMapping decodes a mapping to JSON values.
func (f field) asMapping() (map[string]any, bool) {
	if resolve(f.kv.v).Kind != yaml.MappingNode {
		f.errf("must be a mapping, got %s", describe(f.kv.v))
		return nil, false
	}
	v, err := toJSON(f.kv.v, 0)
	if err != nil {
		f.errf("%v", err)
		return nil, false
	}
	return v.(map[string]any), true
}

// Value kinds: each decodes the value, reports a value that fails check
// (check returns the problem, "" when there is none) and then sets it.
// A value of the right type is set even when check fails, so that later
// checks see what the file says.

func text[T any](set func(*T, string)) func(*T, field) {
	return func(dst *T, f field) {
		if v, ok := f.asString(); ok {
			set(dst, v)
		}
	}
}

func integer[T any](check func(int) string, set func(*T, int)) func(*T, field) {
	return func(dst *T, f field) {
		if v, ok := f.asInt(); ok {
			report(f, check, v)
			set(dst, v)
		}
	}
}

func number[T any](check func(float64) string, set func(*T, float64)) func(*T, field) {
	return func(dst *T, f field) {
		if v, ok := f.asFloat(); ok {
			report(f, check, v)
			set(dst, v)
		}
	}
}

// textList accepts one string or a list of strings.
func textList[T any](set func(*T, []string)) func(*T, field) {
	return func(dst *T, f field) {
		if v, ok := f.asList(); ok {
			set(dst, v)
		}
	}
}

func boolean[T any](set func(*T, bool)) func(*T, field) {
	return func(dst *T, f field) {
		if v, ok := f.asBool(); ok {
			set(dst, v)
		}
	}
}

func report[V any](f field, check func(V) string, v V) {
	if check == nil {
		return
	}
	if msg := check(v); msg != "" {
		f.errf("%s", msg)
	}
}

// Checks.

func intBetween(lo, hi int) func(int) string {
	return func(v int) string {
		if v < lo || v > hi {
			return fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v)
		}
		return ""
	}
}

func unlimitedOrMore(v int) string {
	if v < 0 {
		return fmt.Sprintf("must be 0 (unlimited) or more, got %d", v)
	}
	return ""
}

func positive(v float64) string {
	if v <= 0 {
		return fmt.Sprintf("must be greater than 0, got %v", v)
	}
	return ""
}

func fraction(v float64) string {
	if v < 0 || v > 1 {
		return fmt.Sprintf("must be between 0 and 1, got %v", v)
	}
	return ""
}

// topFields are the fields of a template. They are collected first and
// applied by parser.parse in a fixed order, since they depend on each other
// (the name can carry the namespace; environments override step config).
var topFields = newFieldTable[Template](
	fieldSpec[Template]{name: "namespace", aliases: []string{"namespace_name"}},
	fieldSpec[Template]{name: "name"},
	fieldSpec[Template]{name: "version"},
	fieldSpec[Template]{name: "description"},
	fieldSpec[Template]{name: "context_schema", aliases: []string{"schema"}},
	fieldSpec[Template]{name: "steps", aliases: []string{"step_templates"}},
	fieldSpec[Template]{name: "triggers"},
	fieldSpec[Template]{name: "schedules"},
	fieldSpec[Template]{name: "environments"},
	fieldSpec[Template]{name: "handler_aliases"},
	// Rails Tasker fields with no meaning in this engine.
	fieldSpec[Template]{name: "task_handler_class", ignored: true},
	fieldSpec[Template]{name: "module_namespace", ignored: true},
	fieldSpec[Template]{name: "class_name", ignored: true},
	fieldSpec[Template]{name: "concurrent", ignored: true},
	fieldSpec[Template]{name: "named_steps", ignored: true},
	fieldSpec[Template]{name: "default_dependent_system", ignored: true},
	fieldSpec[Template]{name: "retry_strategies", ignored: true},
	fieldSpec[Template]{name: "monitoring", ignored: true},
	fieldSpec[Template]{name: "handler_config", ignored: true},
	fieldSpec[Template]{name: "custom_events", ignored: true},
)

// stepFields are the fields of a step.
var stepFields = newFieldTable(
	fieldSpec[stepBuild]{name: "name"}, // read first, by parser.stepName, so errors can name the step
	fieldSpec[stepBuild]{name: "description", apply: text(func(b *stepBuild, v string) { b.s.Description = v })},
	fieldSpec[stepBuild]{name: "handler", aliases: []string{"handler_class"},
		apply: text(func(b *stepBuild, v string) { b.s.Handler = strings.TrimSpace(v) })},
	fieldSpec[stepBuild]{name: "depends_on", aliases: []string{"depends_on_step", "depends_on_steps"}, merge: true,
		apply: (*stepBuild).dependsOn},
	fieldSpec[stepBuild]{name: "config", aliases: []string{"handler_config"}, apply: func(b *stepBuild, f field) {
		if v, ok := f.asMapping(); ok {
			b.m.config = v
		}
	}},
	fieldSpec[stepBuild]{name: "retry", apply: (*stepBuild).retry},
	// Rails: default_retryable: false means one attempt; default_retry_limit
	// is retry.max_attempts (0 meaning one attempt). See stepBuild.finishRetry.
	fieldSpec[stepBuild]{name: "default_retryable", apply: func(b *stepBuild, f field) {
		if v, ok := f.asBool(); ok {
			b.retryable, b.retryableLine = &v, f.line()
		}
	}},
	fieldSpec[stepBuild]{name: "default_retry_limit", apply: func(b *stepBuild, f field) {
		if v, ok := f.asInt(); ok {
			b.retryLimit, b.retryLimitLine = &v, f.line()
		}
	}},
	fieldSpec[stepBuild]{name: "timeout_seconds",
		apply: integer(intBetween(1, MaxTimeoutSeconds), func(b *stepBuild, v int) { b.s.TimeoutSeconds = v })},
	fieldSpec[stepBuild]{name: "concurrency", apply: (*stepBuild).concurrency}, // flowcontrol.go
	fieldSpec[stepBuild]{name: "rate_limit", apply: (*stepBuild).rateLimit},    // flowcontrol.go
	fieldSpec[stepBuild]{name: "skippable", apply: boolean(func(b *stepBuild, v bool) { b.s.Skippable = v })},
	fieldSpec[stepBuild]{name: "inputs", apply: (*stepBuild).inputs},
	// Control flow (docs/architecture.md, "States"): condition.go.
	fieldSpec[stepBuild]{name: "when", apply: (*stepBuild).when},
	fieldSpec[stepBuild]{name: "trigger_rule", apply: (*stepBuild).triggerRule},
	fieldSpec[stepBuild]{name: "map", apply: (*stepBuild).mapping}, // mapconfig.go
	// Rails Tasker fields with no meaning in this engine.
	fieldSpec[stepBuild]{name: "custom_events", ignored: true},
	fieldSpec[stepBuild]{name: "dependent_system", ignored: true},
)

// retryFields are the fields of a step's retry mapping. Each records the
// spelling it was given under, for the checks of stepBuild.finishRetry.
var retryFields = newFieldTable(
	fieldSpec[stepBuild]{name: "max_attempts", apply: func(b *stepBuild, f field) {
		// Checked by finishRetry, once default_retry_limit is known.
		if v, ok := f.asInt(); ok {
			b.maxAttempts, b.maxAttemptsField = &v, f.name
			b.m.fields["max_attempts"] = spelled{f.name, f.line()}
		}
	}},
	fieldSpec[stepBuild]{name: "backoff_base_seconds", apply: number(positive, func(b *stepBuild, v float64) {
		b.s.Retry.BackoffBase, b.backoffSet = seconds(v), true
	})},
	fieldSpec[stepBuild]{name: "max_backoff_seconds", apply: func(b *stepBuild, f field) {
		if v, ok := f.asFloat(); ok {
			report(f, positive, v)
			b.s.Retry.MaxBackoff, b.maxSet = seconds(v), true
			b.m.fields["max_backoff"] = spelled{f.name, f.line()}
		}
	}},
	fieldSpec[stepBuild]{name: "jitter", apply: number(fraction, func(b *stepBuild, v float64) { b.s.Retry.Jitter = v })},
)

// triggerFields are the fields of a trigger; checkTrigger then checks them
// against the trigger's type.
var triggerFields = newFieldTable(
	fieldSpec[Trigger]{name: "type", apply: text(func(tr *Trigger, v string) { tr.Type = strings.ToLower(v) })},
	fieldSpec[Trigger]{name: "bucket", apply: text(func(tr *Trigger, v string) { tr.Bucket = v })},
	fieldSpec[Trigger]{name: "prefix", apply: text(func(tr *Trigger, v string) { tr.Prefix = v })},
	fieldSpec[Trigger]{name: "suffix", apply: text(func(tr *Trigger, v string) { tr.Suffix = v })},
	fieldSpec[Trigger]{name: "source", apply: textList(func(tr *Trigger, v []string) { tr.Source = v })},
	fieldSpec[Trigger]{name: "detail_type", apply: textList(func(tr *Trigger, v []string) { tr.DetailType = v })},
	fieldSpec[Trigger]{name: "detail", apply: triggerDetail},
	fieldSpec[Trigger]{name: "context", apply: triggerContext},
)
