package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/taskerhq/tasker/internal/jsonb"
)

// readBody reads a JSON request body: a 415 for another media type, a 413
// past the route's http.MaxBytesReader limit, a 400 when it cannot be read.
func readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		return nil, unsupportedMedia()
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(mbe.Limit)
		}
		return nil, malformed("the request body could not be read")
	}
	return data, nil
}

// readObject reads a request body that must be exactly one JSON object.
// It is strict: a syntax error, a value that is not an object, or anything
// after the object is a 400 malformed-request; a repeated member is a 422.
// An empty body is an empty object when optional, else a 400. The body was
// wrapped in http.MaxBytesReader by the route, so reading past the limit
// fails with *http.MaxBytesError (413).
func readObject(r *http.Request, optional bool) (*object, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return &object{fields: map[string]json.RawMessage{}}, nil
		}
		return nil, malformed("the request body is empty; expected a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, malformed("the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxProblem(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, malformed("the request body must be a JSON object, not " + jsonKind(tok))
	}
	obj := &object{fields: map[string]json.RawMessage{}}
	var errs []FieldError
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxProblem(err)
		}
		key, _ := tok.(string) // the decoder only yields strings as keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, syntaxProblem(err)
		}
		ptr := "/" + escapePointer(key)
		if _, dup := obj.fields[key]; dup {
			errs = append(errs, FieldError{Pointer: ptr, Detail: "is given more than once"})
			continue
		}
		// What PostgreSQL cannot store (NUL characters, lone surrogates,
		// numbers beyond numeric) is refused here, in any member.
		var je *jsonb.Error
		if err := jsonb.Check(v); errors.As(err, &je) {
			errs = append(errs, FieldError{Pointer: ptr + je.Pointer, Detail: je.Detail()})
		}
		obj.fields[key] = v
		obj.order = append(obj.order, key)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed("unexpected data after the JSON object; send exactly one JSON value")
	}
	if len(errs) > 0 {
		return nil, invalid(errs...)
	}
	return obj, nil
}

// isJSONMediaType reports whether ct is application/json or
// application/*+json (parameters allowed).
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")))
}

func unsupportedMedia() *Problem {
	return newProblem(http.StatusUnsupportedMediaType, TypeUnsupportedMedia,
		"the request body must be application/json (send Content-Type: application/json, even with an empty body)").
		withHeader("Accept-Post", "application/json")
}

func syntaxProblem(err error) *Problem {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return malformed(fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("malformed JSON: unexpected end of input")
	}
	return malformed("malformed JSON: " + err.Error())
}

func jsonKind(tok any) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "'" + string(v) + "'"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return "something else"
}

func kindOf(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// escapePointer escapes one RFC 6901 reference token.
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// object is a decoded JSON object whose members are taken one by one; what
// is left over at the end is an unknown field. Every problem is collected,
// so a client sees all of them at once.
type object struct {
	fields map[string]json.RawMessage
	order  []string
	taken  map[string]bool
	errs   []FieldError
}

func (o *object) take(name string) (json.RawMessage, bool) {
	if o.taken == nil {
		o.taken = map[string]bool{}
	}
	o.taken[name] = true
	v, ok := o.fields[name]
	if !ok || string(bytes.TrimSpace(v)) == "null" {
		return nil, false
	}
	return v, true
}

func (o *object) fail(name, detail string) {
	o.errs = append(o.errs, FieldError{Pointer: "/" + escapePointer(name), Detail: detail})
}

// str takes an optional string member of at most maxLen characters.
func (o *object) str(name string, maxLen int) string {
	raw, ok := o.take(name)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.fail(name, "must be a string, not "+kindOf(raw))
		return ""
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		o.fail(name, fmt.Sprintf("must be at most %d characters long (it has %d)", maxLen, n))
		return ""
	}
	return s
}

// required takes a string member that must be present and non-empty.
func (o *object) required(name string, maxLen int) string {
	if raw, ok := o.take(name); !ok || string(bytes.TrimSpace(raw)) == `""` {
		o.fail(name, "is required")
		return ""
	}
	return o.str(name, maxLen)
}

// strings takes an optional array of non-empty strings.
func (o *object) strings(name string, maxItems, maxLen int) []string {
	raw, ok := o.take(name)
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		o.fail(name, "must be an array of strings, not "+kindOf(raw))
		return nil
	}
	if len(items) > maxItems {
		o.fail(name, fmt.Sprintf("must have at most %d items (it has %d)", maxItems, len(items)))
		return nil
	}
	out := make([]string, 0, len(items))
	base := "/" + escapePointer(name)
	for i, it := range items {
		ptr := base + "/" + strconv.Itoa(i)
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			o.errs = append(o.errs, FieldError{Pointer: ptr, Detail: "must be a string, not " + kindOf(it)})
			continue
		}
		switch n := utf8.RuneCountInString(s); {
		case strings.TrimSpace(s) == "":
			o.errs = append(o.errs, FieldError{Pointer: ptr, Detail: "must not be empty"})
		case n > maxLen:
			o.errs = append(o.errs, FieldError{Pointer: ptr, Detail: fmt.Sprintf("must be at most %d characters long", maxLen)})
		default:
			out = append(out, s)
		}
	}
	return out
}

// value takes any JSON value (nil when absent or null).
func (o *object) value(name string) json.RawMessage {
	raw, _ := o.take(name)
	return raw
}

// finish reports unknown members and every collected problem as one 422.
func (o *object) finish() error {
	for _, k := range o.order {
		if !o.taken[k] {
			o.fail(k, "is not a known field")
		}
	}
	if len(o.errs) > 0 {
		return invalid(o.errs...)
	}
	return nil
}
