package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// DefaultMaxResponseBytes is the response byte budget when
// Config.MaxResponseBytes is 0: 4 MiB, so eight concurrent worst-case
// lists hold tens of megabytes, not gigabytes (docs/security.md).
const DefaultMaxResponseBytes = 4 << 20

// HeaderOmitted names, on a task read, the members left out to keep the
// response within the byte budget (today only "steps.result").
const HeaderOmitted = "Tasker-Omitted"

// fieldSet is the members a response keeps (?fields=); nil keeps all.
type fieldSet map[string]bool

// has reports whether the member name is kept.
func (f fieldSet) has(name string) bool { return f == nil || f[name] }

// parseFields reads the fields query parameter: a comma-separated list of
// the top-level members of a response object to return. id is always
// returned; an unknown name is a 400 listing the allowed ones.
func parseFields(raw string, present bool, allowed []string) (fieldSet, error) {
	if !present {
		return nil, nil
	}
	set := fieldSet{"id": true}
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(allowed, name) {
			return nil, badParam("fields", fmt.Sprintf("unknown field %q; allowed: %s", name, strings.Join(allowed, ", ")))
		}
		set[name] = true
	}
	return set, nil
}

// jsonNames lists the JSON member names of a response struct, in order,
// embedded structs included, leaving out the given ones.
func jsonNames(v any, except ...string) []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" && f.IsExported() && !slices.Contains(except, name) {
				names = append(names, name)
			}
		}
	}
	walk(reflect.TypeOf(v))
	return names
}

// Members ?fields= may name on each route.
var (
	taskListFields   = jsonNames(Task{}, "id", "steps")
	taskDetailFields = jsonNames(Task{}, "id")
	stepDetailFields = jsonNames(StepDetail{}, "name")
)

// encode is json.Marshal as writeJSON does it: HTML left unescaped, no
// trailing newline.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// encodeFields encodes the struct v keeping only the members in fields
// (all when fields is nil), in declaration order, with their usual
// encoding: members left out are never encoded at all.
func encodeFields(v any, fields fieldSet) ([]byte, error) {
	if fields == nil {
		return encode(v)
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	var walk func(rv reflect.Value) error
	walk = func(rv reflect.Value) error {
		t := rv.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				if err := walk(rv.Field(i)); err != nil {
					return err
				}
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() || !fields.has(name) {
				continue
			}
			fv := rv.Field(i)
			if strings.Contains(opts, "omitzero") && fv.IsZero() {
				continue
			}
			b, err := encode(fv.Interface())
			if err != nil {
				return fmt.Errorf("member %s: %w", name, err)
			}
			if buf.Len() > 1 {
				buf.WriteByte(',')
			}
			key, _ := encode(name)
			buf.Write(key)
			buf.WriteByte(':')
			buf.Write(b)
		}
		return nil
	}
	if err := walk(reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// writeBody sends an encoded JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeTask sends a task read within the byte budget: when the task and
// its steps encode to more than the budget, the largest step results are
// left out (null) until it fits, and the Tasker-Omitted header says so;
// GET /v1/tasks/{id}/steps/{step} returns each in full.
func (s *server) writeTask(w http.ResponseWriter, r *http.Request, status int, t Task, fields fieldSet) {
	body, err := encodeFields(t, fields)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode task: %w", err))
		return
	}
	if len(body) > s.maxResponse && fields.has("steps") && len(t.Steps) > 0 {
		// Each result's share of the body is its compact encoding.
		size := make([]int, len(t.Steps))
		order := make([]int, len(t.Steps))
		for i, st := range t.Steps {
			order[i] = i
			if st.Result != nil {
				var c bytes.Buffer
				if json.Compact(&c, st.Result) == nil {
					size[i] = c.Len()
				} else {
					size[i] = len(st.Result)
				}
			}
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(size[b], size[a]) })
		over := len(body) - s.maxResponse
		steps := slices.Clone(t.Steps)
		for _, i := range order {
			if over <= 0 || steps[i].Result == nil {
				break
			}
			over -= size[i] - len("null")
			steps[i].Result = nil
		}
		t.Steps = steps
		if body, err = encodeFields(t, fields); err == nil && len(body) > s.maxResponse {
			for i := range steps { // an estimate fell short: leave them all out
				steps[i].Result = nil
			}
			body, err = encodeFields(t, fields)
		}
		if err != nil {
			s.fail(w, r, fmt.Errorf("encode task: %w", err))
			return
		}
		w.Header().Set(HeaderOmitted, "steps.result")
	}
	writeBody(w, status, body)
}

// listEnvelope is what a task list adds around its items, at most.
const listEnvelope = len(`{"tasks":[],"next_cursor":""}`) + 256

// encodeTaskList encodes a page, stopping before the item that would take
// the body past the budget (the first item is always kept); the cursor of
// the last item kept then becomes next_cursor.
func (s *server) encodeTaskList(tasks []Task, next *string, fields fieldSet, cursorAt func(i int) string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"tasks":[`)
	for i, t := range tasks {
		item, err := encodeFields(t, fields)
		if err != nil {
			return nil, fmt.Errorf("encode task %s: %w", t.ID, err)
		}
		if i > 0 && buf.Len()+1+len(item)+listEnvelope > s.maxResponse {
			c := cursorAt(i - 1)
			next = &c
			break
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(item)
	}
	buf.WriteString(`],"next_cursor":`)
	nc, err := encode(next)
	if err != nil {
		return nil, err
	}
	buf.Write(nc)
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
