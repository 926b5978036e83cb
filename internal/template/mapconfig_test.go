package template

import (
	"encoding/json"
	"strings"
	"testing"
)

func mapTemplate(mapBody string) string {
	return `
name: pipeline
steps:
  - name: list
    handler: tasker.noop
  - name: process
    handler: tasker.noop
    depends_on: [list]
    map:
` + mapBody
}

func TestMapField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		err        string // "" for a template that loads
		conc, max  int
		tolerated  int // of 10 items
	}{
		{name: "defaults", body: "      over: results.list.files\n", conc: DefaultMapMaxConcurrency, max: DefaultMapMaxItems},
		{name: "all fields", body: "      over: context.files\n      max_concurrency: 50\n      max_items: 20\n      tolerated_failures: 2\n",
			conc: 50, max: 20, tolerated: 2},
		{name: "percentage", body: "      over: context.files\n      tolerated_failures: \"30%\"\n", conc: DefaultMapMaxConcurrency,
			max: DefaultMapMaxItems, tolerated: 3},
		{name: "no over", body: "      max_items: 3\n", err: "needs over"},
		{name: "not a list", body: "      over: 1 + 2\n", err: "must be a list expression"},
		{name: "bad CEL", body: "      over: results.list.files[\n", err: "invalid CEL"},
		{name: "unknown variable", body: "      over: files\n", err: "a map expression sees only context and results"},
		{name: "not a parent", body: "      over: results.other.files\n", err: `"other" is not a parent`},
		{name: "zero concurrency", body: "      over: context.files\n      max_concurrency: 0\n", err: "max_concurrency must be an integer from 1 to 1000"},
		{name: "too many items allowed", body: "      over: context.files\n      max_items: 1000000\n", err: "max_items must be an integer from 1 to 100000"},
		{name: "unknown key", body: "      over: context.files\n      parallel: 3\n", err: `unknown field "parallel"`},
		{name: "bad percentage", body: "      over: context.files\n      tolerated_failures: \"120%\"\n", err: "percentage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse("p.yaml", []byte(mapTemplate(tc.body)), Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "process") {
					t.Fatalf("error = %v, want one naming the step and saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, _ := tpl.Step("process")
			if st.Map == nil || st.Map.MaxConcurrency != tc.conc || st.Map.MaxItems != tc.max || st.Map.Tolerated(10) != tc.tolerated {
				t.Fatalf("map = %+v, want concurrency %d, max %d, tolerated %d of 10", st.Map, tc.conc, tc.max, tc.tolerated)
			}
		})
	}
}

func TestMapItems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		over, ctx, results string
		want, err          string
	}{
		{over: "context.files", ctx: `{"files":["a","b"]}`, want: `["a","b"]`},
		{over: "results.list.files.map(f, {'name': f, 'n': 1})", results: `{"list":{"files":["x"]}}`,
			want: `[{"n":1,"name":"x"}]`},
		{over: "context.files", ctx: `{"files":[]}`, want: `[]`},
		{over: "context.files", ctx: `{}`, err: "no such key"},
		{over: "context.files", ctx: `{"files":"a"}`, err: "must return a list"},
	}
	for _, tc := range cases {
		m, err := CompileMapOver(tc.over)
		if err != nil {
			t.Fatal(err)
		}
		items, err := m.Items(json.RawMessage(tc.ctx), json.RawMessage(tc.results))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error = %v, want %q", tc.over, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.over, err)
		}
		got, _ := json.Marshal(items)
		if string(got) != tc.want {
			t.Errorf("%s = %s, want %s", tc.over, got, tc.want)
		}
	}
}
