// Package jsonb checks JSON text against what PostgreSQL's jsonb type
// accepts, so that a value the database would refuse is reported, with
// where and why, before it reaches a statement it would fail.
//
// Beyond RFC 8259 syntax, jsonb refuses the escape \u0000, surrogate
// escapes (\ud800-\udfff) that do not form a pair, invalid UTF-8, and
// numbers outside the range of the numeric type. Check reports each of
// these; the limits were confirmed against PostgreSQL 15 (see the tests).
//
// Import rules: this package imports only the standard library.
package jsonb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting Check accepts. encoding/json refuses
// deeper input, and PostgreSQL with its default max_stack_depth accepts it.
const MaxDepth = 10000

// Limits of PostgreSQL's numeric type: digits before the decimal point
// (its base-10000 weight is an int16) and digits after it (display scale).
const (
	maxIntegerDigits  = 131072
	maxFractionDigits = 16383
	// maxExponent is the exponent magnitude numeric_in refuses outright,
	// even for zero (INT_MAX / 2).
	maxExponent = 1<<30 - 1
)

// Error says why PostgreSQL would refuse a JSON text, and where.
type Error struct {
	Path    string // JSONPath of the value at fault: "$", "$.a", "$.list[2]"
	Pointer string // the same place as an RFC 6901 JSON Pointer: "", "/a", "/list/2"
	What    string // what is at fault: "string", "object key", "number" or "value"
	Problem string // what is wrong with it
}

func (e *Error) Error() string { return e.What + " at " + e.Path + " " + e.Problem }

// Detail is the error without its location, for reports that give the
// location their own way (a JSON Pointer in an API problem).
func (e *Error) Detail() string { return e.What + " " + e.Problem }

// Check reports whether raw is one JSON value that PostgreSQL can store as
// jsonb. It returns nil or an *Error.
func Check(raw []byte) error {
	s := scanner{data: raw}
	s.space()
	if err := s.value(); err != nil {
		return err
	}
	if s.space(); s.pos < len(s.data) {
		return s.syntax("unexpected data after the value")
	}
	return nil
}

// segment is one step of the path to the value being scanned: an object
// member (key holds its raw, still escaped, name) or an array index.
type segment struct {
	key     []byte
	index   int
	inArray bool
}

type scanner struct {
	data []byte
	pos  int
	path []segment
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value() error {
	if s.pos >= len(s.data) {
		return s.syntax("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.string("string")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntax(fmt.Sprintf("unexpected %q", c))
	}
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.syntax("invalid literal; expected " + lit)
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) object() error {
	if len(s.path) >= MaxDepth {
		return s.fail("value", fmt.Sprintf("is nested more than %d levels deep", MaxDepth))
	}
	s.pos++ // {
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.syntax("expected a string as object key")
		}
		start := s.pos
		if err := s.string("object key"); err != nil {
			return err
		}
		key := s.data[start+1 : s.pos-1]
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntax("expected ':' after object key")
		}
		s.pos++
		s.space()
		s.path = append(s.path, segment{key: key})
		if err := s.value(); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end of input in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.space()
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array() error {
	if len(s.path) >= MaxDepth {
		return s.fail("value", fmt.Sprintf("is nested more than %d levels deep", MaxDepth))
	}
	s.pos++ // [
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		s.path = append(s.path, segment{index: i, inArray: true})
		if err := s.value(); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end of input in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.space()
		case ']':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or ']' in array")
		}
	}
}

// string scans a string starting at its opening quote; what names it in
// errors ("string" or "object key").
func (s *scanner) string(what string) error {
	s.pos++ // "
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c < 0x20:
			return s.syntax("control character in string; it must be escaped")
		case c == '\\':
			if err := s.escape(what); err != nil {
				return err
			}
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n <= 1 {
				return s.fail(what, fmt.Sprintf("is not valid UTF-8 (byte 0x%02x)", c))
			}
			s.pos += n
		}
	}
	return s.syntax("unterminated string")
}

func (s *scanner) escape(what string) error {
	if s.pos+1 >= len(s.data) {
		return s.syntax("unterminated string")
	}
	switch s.data[s.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos += 2
		return nil
	case 'u':
	default:
		return s.syntax(fmt.Sprintf("invalid escape \\%c in string", s.data[s.pos+1]))
	}
	r, ok := s.hex4(s.pos + 2)
	if !ok {
		return s.syntax("invalid \\u escape in string; it needs four hex digits")
	}
	switch {
	case r == 0:
		return s.fail(what, `contains a NUL character (\u0000), which PostgreSQL cannot store`)
	case r >= 0xdc00 && r <= 0xdfff:
		return s.fail(what, fmt.Sprintf(`contains a lone surrogate escape (\u%04x), which is not a Unicode character and PostgreSQL cannot store`, r))
	case r >= 0xd800 && r <= 0xdbff:
		// A high surrogate must be followed by a low one.
		if s.pos+7 < len(s.data) && s.data[s.pos+6] == '\\' && s.data[s.pos+7] == 'u' {
			if lo, ok := s.hex4(s.pos + 8); ok && lo >= 0xdc00 && lo <= 0xdfff {
				s.pos += 12
				return nil
			}
		}
		return s.fail(what, fmt.Sprintf(`contains a lone surrogate escape (\u%04x), which is not a Unicode character and PostgreSQL cannot store`, r))
	}
	s.pos += 6
	return nil
}

// hex4 decodes the four hex digits at i.
func (s *scanner) hex4(i int) (rune, bool) {
	if i+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number scans a number and checks it against numeric's range, mirroring
// PostgreSQL's numeric_in: the exponent must be below 2^30-1 in magnitude,
// the display scale (digits after the point, less the exponent) at most
// 16383, and a non-zero value's leading digit at most 131071 places before
// the point.
func (s *scanner) number() error {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	intStart := s.pos
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.pos < len(s.data) && s.data[s.pos] >= '1' && s.data[s.pos] <= '9':
		s.digits()
	default:
		return s.syntax("invalid number")
	}
	intDigits := s.data[intStart:s.pos]
	var fracDigits []byte
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		fs := s.pos
		if s.digits() == 0 {
			return s.syntax("invalid number: no digits after the decimal point")
		}
		fracDigits = s.data[fs:s.pos]
	}
	exp := 0
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		neg := false
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			neg = s.data[s.pos] == '-'
			s.pos++
		}
		es := s.pos
		if s.digits() == 0 {
			return s.syntax("invalid number: no digits in the exponent")
		}
		for _, c := range s.data[es:s.pos] {
			exp = min(exp*10+int(c-'0'), maxExponent) // saturates, as strtol does
		}
		if neg {
			exp = -exp
		}
	}
	if !numericFits(intDigits, fracDigits, exp) {
		lit := string(s.data[start:s.pos])
		if len(lit) > 40 {
			lit = lit[:40] + "…"
		}
		return s.fail("number", fmt.Sprintf("%s is out of the range PostgreSQL numeric can store (%d digits before the decimal point, %d after)",
			lit, maxIntegerDigits, maxFractionDigits))
	}
	return nil
}

func numericFits(intDigits, fracDigits []byte, exp int) bool {
	if exp >= maxExponent || exp <= -maxExponent {
		return false
	}
	if len(fracDigits)-exp > maxFractionDigits {
		return false
	}
	// The power of ten of the leading non-zero digit.
	for i, c := range intDigits {
		if c != '0' {
			return len(intDigits)-1-i+exp < maxIntegerDigits
		}
	}
	for i, c := range fracDigits {
		if c != '0' {
			return -(i+1)+exp < maxIntegerDigits
		}
	}
	return true // zero
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func (s *scanner) syntax(msg string) error {
	return s.fail("value", fmt.Sprintf("is not valid JSON: %s at byte %d", msg, s.pos))
}

func (s *scanner) fail(what, problem string) error {
	e := &Error{What: what, Problem: problem}
	var ptr strings.Builder
	var path strings.Builder
	path.WriteString("$")
	for _, seg := range s.path {
		if seg.inArray {
			fmt.Fprintf(&path, "[%d]", seg.index)
			fmt.Fprintf(&ptr, "/%d", seg.index)
			continue
		}
		key := unquote(seg.key)
		if simpleKey(key) {
			path.WriteString("." + key)
		} else {
			path.WriteString("[" + strconv.Quote(key) + "]")
		}
		ptr.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1"))
	}
	e.Path, e.Pointer = path.String(), ptr.String()
	return e
}

// unquote decodes a raw object key the scanner already accepted.
func unquote(raw []byte) string {
	var s string
	if err := json.Unmarshal([]byte(`"`+string(raw)+`"`), &s); err != nil {
		return string(raw) // cannot happen for an accepted key
	}
	return s
}

// simpleKey reports whether a key can follow a '.' in a JSONPath.
func simpleKey(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
