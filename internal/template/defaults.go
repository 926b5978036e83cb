package template

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
)

// ApplyDefaults returns ctx with the "default" values of the
// context_schema filled in where the context lacks the property, as the
// Rails engine does before it validates: for each "properties" entry
// with a "default" (also under "allOf"), recursively into the objects
// the context has or a default created. ctx is returned unchanged (the
// same bytes) when the schema has no default that applies or ctx is not a
// JSON object; ValidateContext then reports what is wrong with it.
func (t *Template) ApplyDefaults(ctx json.RawMessage) (json.RawMessage, error) {
	if len(t.ContextSchema) == 0 || !bytes.Contains(t.ContextSchema, []byte(`"default"`)) {
		return ctx, nil
	}
	var schema any
	sdec := json.NewDecoder(bytes.NewReader(t.ContextSchema))
	sdec.UseNumber() // a default is stored exactly as written
	if err := sdec.Decode(&schema); err != nil {
		return ctx, nil // compiled at load; cannot happen for a parsed template
	}
	trimmed := bytes.TrimSpace(ctx)
	if len(trimmed) == 0 {
		trimmed = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber() // keep numbers exactly as given
	var v any
	if err := dec.Decode(&v); err != nil {
		return ctx, nil
	}
	obj, ok := v.(map[string]any)
	if !ok || !fillDefaults(obj, schema, 0) {
		return ctx, nil
	}
	return json.Marshal(obj)
}

// maxDefaultDepth bounds the recursion over nested schemas.
const maxDefaultDepth = 64

// fillDefaults fills obj from schema's property defaults and reports
// whether it changed anything.
func fillDefaults(obj map[string]any, schema any, depth int) bool {
	s, ok := schema.(map[string]any)
	if !ok || depth > maxDefaultDepth {
		return false
	}
	changed := false
	if props, ok := s["properties"].(map[string]any); ok {
		for _, name := range sortedKeys(props) {
			ps, ok := props[name].(map[string]any)
			if !ok {
				continue
			}
			if _, has := obj[name]; !has {
				if def, ok := ps["default"]; ok {
					obj[name] = deepCopy(def)
					changed = true
				}
			}
			if child, ok := obj[name].(map[string]any); ok && fillDefaults(child, ps, depth+1) {
				changed = true
			}
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if fillDefaults(obj, sub, depth+1) {
				changed = true
			}
		}
	}
	return changed
}

func sortedKeys(m map[string]any) []string {
	// Order does not matter for the result; sorted keeps runs reproducible.
	keys := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// deepCopy copies a default so two contexts never share its maps.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
