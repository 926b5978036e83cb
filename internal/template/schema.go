package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

const schemaURL = "https://tasker.invalid/context_schema.json"

var printer = message.NewPrinter(language.English)

// compileSchema compiles a context schema. Draft 2020-12 unless the schema
// says otherwise with $schema; "format" is asserted (an "email" that is not
// an email fails); references to other documents are not loaded.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file or network access for $ref
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		if errors.As(err, &sve) {
			var ve *jsonschema.ValidationError
			if errors.As(sve.Err, &ve) {
				var parts []string
				for _, v := range violations(ve) {
					p := v.Pointer
					if p == "" {
						p = "/"
					}
					parts = append(parts, fmt.Sprintf("at %s: %s", p, v.Message))
				}
				return nil, errors.New(strings.Join(parts, "; "))
			}
		}
		return nil, errors.New(strings.ReplaceAll(err.Error(), schemaURL, "context_schema"))
	}
	return sch, nil
}

// ValidateContext checks a task context: it must be a JSON object and,
// when the template has a context_schema, satisfy it. An empty ctx counts
// as {}. The error is a *ContextError with one Violation per failing value.
func (t *Template) ValidateContext(ctx json.RawMessage) error {
	trimmed := bytes.TrimSpace(ctx)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(trimmed))
	if err != nil {
		return &ContextError{Violations: []Violation{{Pointer: "", Message: "invalid JSON: " + err.Error()}}}
	}
	if _, ok := v.(map[string]any); !ok {
		return &ContextError{Violations: []Violation{{Pointer: "", Message: "context must be a JSON object, got " + jsonKind(v)}}}
	}
	sch := t.schema
	if sch == nil {
		if len(t.ContextSchema) == 0 {
			return nil
		}
		// A Template built by hand rather than parsed.
		if sch, err = compileSchema(t.ContextSchema); err != nil {
			return fmt.Errorf("template %s: invalid context_schema: %w", t.Key(), err)
		}
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &ContextError{Violations: []Violation{{Pointer: "", Message: err.Error()}}}
	}
	vs := violations(ve)
	if len(vs) == 0 {
		vs = []Violation{{Pointer: "", Message: "does not match the context_schema"}}
	}
	return &ContextError{Violations: vs}
}

// violations flattens a validation error to its leaves, sorted by pointer.
func violations(ve *jsonschema.ValidationError) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		base := pointer(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				out = append(out, Violation{Pointer: base + "/" + escapePointer(m), Message: "is required"})
			}
		case *kind.AdditionalProperties:
			for _, m := range k.Properties {
				out = append(out, Violation{Pointer: base + "/" + escapePointer(m), Message: "is not allowed (additional property)"})
			}
		case *kind.FalseSchema:
			out = append(out, Violation{Pointer: base, Message: "is not allowed"})
		default:
			out = append(out, Violation{Pointer: base, Message: e.ErrorKind.LocalizedString(printer)})
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pointer != out[j].Pointer {
			return out[i].Pointer < out[j].Pointer
		}
		return out[i].Message < out[j].Message
	})
	// drop exact duplicates (e.g. from several anyOf branches)
	dedup := out[:0]
	for i, v := range out {
		if i > 0 && v == out[i-1] {
			continue
		}
		dedup = append(dedup, v)
	}
	return dedup
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}
