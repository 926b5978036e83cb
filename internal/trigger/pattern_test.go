package trigger

import (
	"encoding/json"
	"strings"
	"testing"
)

func decodeAny(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestMatchPattern(t *testing.T) {
	t.Parallel()
	detail := `{"state":"created","amount":42.5,"count":3,"channel":"web","tags":["a","vip"],"customer":{"tier":"gold","email":"ADA@example.com"},
		"file":"exports/2024/report.csv","flag":true,"none":null}`
	cases := []struct {
		pattern string
		want    bool
	}{
		{`{}`, true},
		{`{"state":["created"]}`, true},
		{`{"state":"created"}`, true}, // a scalar stands for a one-element list
		{`{"state":["deleted","created"]}`, true},
		{`{"state":["deleted"]}`, false},
		{`{"missing":["x"]}`, false},
		{`{"amount":[42.5]}`, true},
		{`{"count":[3]}`, true},
		{`{"count":["3"]}`, false}, // types matter
		{`{"flag":[true]}`, true},
		{`{"none":[null]}`, true},
		{`{"tags":["vip"]}`, true}, // any element of an event array
		{`{"tags":["b"]}`, false},
		{`{"customer":{"tier":["gold"]}}`, true},
		{`{"customer":{"tier":["silver"]}}`, false},
		{`{"state":{"tier":["gold"]}}`, false}, // nested pattern on a scalar
		{`{"file":[{"prefix":"exports/"}]}`, true},
		{`{"file":{"prefix":"exports/"}}`, true}, // a lone operator object
		{`{"file":[{"prefix":"imports/"}]}`, false},
		{`{"file":[{"suffix":".csv"}]}`, true},
		{`{"file":[{"wildcard":"exports/*/*.csv"}]}`, true},
		{`{"file":[{"wildcard":"exports/*.json"}]}`, false},
		{`{"customer":{"email":[{"equals-ignore-case":"ada@EXAMPLE.com"}]}}`, true},
		{`{"state":[{"anything-but":"deleted"}]}`, true},
		{`{"state":[{"anything-but":["deleted","created"]}]}`, false},
		{`{"state":[{"anything-but":{"prefix":"cr"}}]}`, false},
		{`{"missing":[{"anything-but":"x"}]}`, false}, // anything-but needs the field
		{`{"amount":[{"numeric":[">",0,"<=",50]}]}`, true},
		{`{"amount":[{"numeric":[">",50]}]}`, false},
		{`{"count":[{"numeric":["=",3]}]}`, true},
		{`{"state":[{"numeric":[">",0]}]}`, false},
		{`{"missing":[{"exists":false}]}`, true},
		{`{"missing":[{"exists":true}]}`, false},
		{`{"state":[{"exists":true}]}`, true},
		{`{"state":[{"exists":false}]}`, false},
		{`{"nothere":{"deep":[{"exists":false}]}}`, true},
		{`{"nothere":{"deep":["x"]}}`, false},
		{`{"$or":[{"state":["deleted"]},{"channel":["web"]}]}`, true},
		{`{"$or":[{"state":["deleted"]},{"channel":["app"]}]}`, false},
		{`{"state":["created"],"channel":["app"]}`, false}, // every field must match
		{`{"state":[{"cidr":"10.0.0.0/24"}]}`, false},      // unsupported operators never match
	}
	ev := decodeAny(t, detail)
	for _, c := range cases {
		p, ok := decodeAny(t, c.pattern).(map[string]any)
		if !ok {
			t.Fatalf("pattern %s is not an object", c.pattern)
		}
		if got := matchPattern(p, ev); got != c.want {
			t.Errorf("pattern %s: got %v, want %v", c.pattern, got, c.want)
		}
	}
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	ev := decodeAny(t, `{"detail":{"order_id":"o-1","line-items":[{"sku":"A"},{"sku":"B"}],"a.b":1},"detail-type":"X"}`)
	cases := []struct {
		path string
		want string // JSON of the value; "" when not found
	}{
		{"$.detail.order_id", `"o-1"`},
		{"$.detail-type", `"X"`},
		{"$.detail['line-items'][1].sku", `"B"`},
		{`$.detail["a.b"]`, `1`},
		{"$.detail.line-items[0]", `{"sku":"A"}`},
		{"$.detail.line-items[5]", ``},
		{"$.detail.missing", ``},
		{"$.detail.order_id.deeper", ``},
	}
	for _, c := range cases {
		segs, err := parsePath(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		v, ok := lookup(ev, segs)
		got := ""
		if ok {
			b, _ := json.Marshal(v)
			got = string(b)
		}
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.path, got, c.want)
		}
	}
	if segs, err := parsePath("$"); err != nil || len(segs) != 0 {
		t.Errorf("$: %v %v", segs, err)
	}
	for _, bad := range []string{"detail", "$..x", "$.a[", "$.a[x]", "$.a['x", "$.a['x'y]", "$x", "$.a[-1]"} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("%s: parsed, want an error", bad)
		}
	}
}
