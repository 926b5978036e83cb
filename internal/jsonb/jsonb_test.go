package jsonb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/jsonb"
	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cases are tricky inputs; ok says whether PostgreSQL 15 stores them as
// jsonb (TestCheckAgreesWithPostgreSQL checks that against a server).
var cases = []struct {
	in string
	ok bool
}{
	{`{"a":"x\u0000y"}`, false},
	{`{"x\u0000":1}`, false},
	{`"\u0000"`, false},
	{`"\\u0000"`, true},
	{`"\ud800"`, false},
	{`"\udc00"`, false},
	{`"\ud800x"`, false},
	{`"\ud800\u0041"`, false},
	{`"\ud800\ud800"`, false},
	{`"\udc00\ud800"`, false},
	{`"\ud800\udc00"`, true},
	{`"\uDBFF\uDFFF"`, true},
	{`"\uD83D\uDE00"`, true},
	{`"\uffff\ufffe"`, true},
	{`"\u00e9\/\b\f\n\r\t\"\\"`, true},
	{`"\x"`, false},
	{`"\u12"`, false},
	{`"\u12g4"`, false},
	{"\"a\tb\"", false},
	{"\"\xff\"", false},
	{"\"\xed\xa0\x80\"", false}, // a surrogate encoded as UTF-8
	{"\"\xf4\x90\x80\x80\"", false},
	{"\"é😀\"", true},
	{`1e200000`, false},
	{`1e131071`, true},
	{`-1e131071`, true},
	{`9.9e131071`, true},
	{`1e131072`, false},
	{`1e+0131071`, true},
	{`0.0001e131075`, true},
	{`0.0001e131076`, false},
	{`10000e131067`, true},
	{`10000e131068`, false},
	{`1e-16383`, true},
	{`1e-16384`, false},
	{`1.5e-16382`, true},
	{`1.5e-16383`, false},
	{`1.50e-16382`, false},
	{`0.00e-16381`, true},
	{`0.00e-16382`, false},
	{`0e200000`, true},
	{`-0.0e1073741822`, true},
	{`0e1073741823`, false},
	{`0e-1073741822`, false},
	{`0e99999999999999999999999`, false},
	{`1e-99999999999999999999999`, false},
	{"1" + strings.Repeat("0", 131071), true},
	{"1" + strings.Repeat("0", 131072), false},
	{"0." + strings.Repeat("0", 16383), true},
	{"0." + strings.Repeat("0", 16384), false},
	{`-0`, true},
	{`1E-0`, true},
	{`01`, false},
	{`-01`, false},
	{`00.5`, false},
	{`1.`, false},
	{`.5`, false},
	{`1e`, false},
	{`1e+`, false},
	{`+1`, false},
	{`-`, false},
	{`NaN`, false},
	{`Infinity`, false},
	{`[1,]`, false},
	{`{"a":1,}`, false},
	{`{"a" 1}`, false},
	{`{a:1}`, false},
	{`{"a":1,"a":2}`, true},
	{` [ 1 , {"b" : [ ] } ] `, true},
	{"\t\r\n1\n", true},
	{`true`, true},
	{`nul`, false},
	{`truex`, false},
	{`1 2`, false},
	{``, false},
	{` `, false},
	{"\ufeff1", false},
	{`"abc`, false},
	{`[`, false},
	{`{"a":`, false},
	{strings.Repeat("[", jsonb.MaxDepth) + strings.Repeat("]", jsonb.MaxDepth), true},
}

func TestCheckAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t)
	for _, c := range cases {
		err := jsonb.Check([]byte(c.in))
		if got := err == nil; got != c.ok {
			t.Errorf("Check(%.60q) = %v, want ok=%v", c.in, err, c.ok)
		}
		if stored, perr := storable(t, pool, c.in); stored != c.ok {
			t.Errorf("PostgreSQL stored %.60q: %v (%v), want %v; fix the table", c.in, stored, perr, c.ok)
		}
	}
}

// storable reports whether PostgreSQL accepts in as jsonb, sent as the
// engine sends results. Any refusal must be a data exception (class 22).
func storable(t *testing.T, pool *pgxpool.Pool, in string) (bool, error) {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), "SELECT length($1::jsonb::text)", json.RawMessage(in)).Scan(&n)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22"):
		return false, err
	}
	t.Fatalf("%.60q: not a data exception: %v", in, err)
	return false, err
}

func TestCheckNamesTheProblem(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, msg, pointer string
	}{
		{`{"a":"x\u0000y"}`, `string at $.a contains a NUL character (\u0000), which PostgreSQL cannot store`, "/a"},
		{`{"a":[1,{"b\u0000":2}]}`, `object key at $.a[1] contains a NUL character (\u0000)`, "/a/1"},
		{`[0,"\ud800"]`, `string at $[1] contains a lone surrogate escape (\ud800)`, "/1"},
		{`{"n":{"x y":1e200000}}`, `number at $.n["x y"] 1e200000 is out of the range PostgreSQL numeric can store`, "/n/x y"},
		{`{"a/b~":"\udc00"}`, `string at $["a/b~"] contains a lone surrogate escape (\udc00)`, "/a~1b~0"},
		{"{\"s\":\"\xff\"}", `string at $.s is not valid UTF-8 (byte 0xff)`, "/s"},
		{`{"a":[1,2}`, `value at $.a is not valid JSON: expected ',' or ']' in array at byte 9`, "/a"},
		{strings.Repeat("[", jsonb.MaxDepth+1), `value at $` + strings.Repeat("[0]", jsonb.MaxDepth) + ` is nested more than 10000 levels deep`,
			strings.Repeat("/0", jsonb.MaxDepth)},
	} {
		err := jsonb.Check([]byte(c.in))
		var je *jsonb.Error
		if !errors.As(err, &je) {
			t.Errorf("Check(%.40q) = %v, want a *jsonb.Error", c.in, err)
			continue
		}
		if !strings.HasPrefix(je.Error(), c.msg) {
			t.Errorf("Check(%.40q) = %.200q, want it to start with %.200q", c.in, je.Error(), c.msg)
		}
		if je.Pointer != c.pointer {
			t.Errorf("Check(%.40q).Pointer = %.60q, want %.60q", c.in, je.Pointer, c.pointer)
		}
	}
}

// FuzzCheck: Check never panics, accepts only what encoding/json accepts,
// and, for every input encoding/json accepts, accepts exactly what
// PostgreSQL stores. Seeds run in every `go test`; each fuzzed input costs a
// round trip.
func FuzzCheck(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.in))
	}
	for _, s := range []string{`{"a":{"b":[1,2.5e3,-0.1,true,false,null,"s"]}}`, `"\u0041\u00e9"`, `[1e-16383,1e131071]`, `{"\ud83d\ude00":"x"}`} {
		f.Add([]byte(s))
	}
	pool := pgtest.Pool(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		err := jsonb.Check(in)
		if err == nil && !json.Valid(in) {
			t.Fatalf("Check accepted %q, which encoding/json refuses", in)
		}
		if !json.Valid(in) {
			return // PostgreSQL's grammar is RFC 8259's; the table covers its edges
		}
		stored, perr := storable(t, pool, string(in))
		if stored != (err == nil) {
			t.Fatalf("Check(%q) = %v, but PostgreSQL stored=%v (%v)", in, err, stored, perr)
		}
	})
}

// BenchmarkCheck measures the check every handler result passes through
// on the scheduler's path, on a typical small result and a 200 KiB one.
func BenchmarkCheck(b *testing.B) {
	small := []byte(`{"order_id":"ord-123","amount":12.5,"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"paid":true,"note":"caf\u00e9"}`)
	var big bytes.Buffer
	big.WriteString(`{"rows":[`)
	for i := 0; big.Len() < 200<<10; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"id":%d,"name":"row %d","score":%d.25,"tags":["x","y\n"]}`, i, i, i)
	}
	big.WriteString(`]}`)
	for _, c := range []struct {
		name string
		in   []byte
	}{{"small", small}, {"200KiB", big.Bytes()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if err := jsonb.Check(c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
