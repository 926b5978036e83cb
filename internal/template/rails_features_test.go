package template_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/taskerhq/tasker/internal/template"
)

func TestHandlerAliases(t *testing.T) {
	t.Parallel()
	reg := handlerSet{"shop.ship": true}
	src := `
name: wf
handler_aliases:
  Ecommerce::ShipHandler: shop.ship
steps:
  - {name: validate, handler_class: Ecommerce::ValidateOrderHandler}
  - {name: ship, handler_class: Ecommerce::ShipHandler, depends_on: validate}
  - {name: notify, handler: tasker.noop, depends_on: ship}
`
	tpl, err := template.Parse("wf.yaml", []byte(src), template.Options{Handlers: reg,
		HandlerAliases: map[string]string{"Ecommerce::ValidateOrderHandler": "lambda:validate-order", "Ecommerce::ShipHandler": "ignored.by.template"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, s := range tpl.Steps {
		got[s.Name] = [2]string{s.Handler, s.HandlerAlias}
	}
	want := map[string][2]string{
		"validate": {"lambda:validate-order", "Ecommerce::ValidateOrderHandler"},
		"ship":     {"shop.ship", "Ecommerce::ShipHandler"}, // the template's own alias wins
		"notify":   {"tasker.noop", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("handlers = %v, want %v", got, want)
	}
}

func TestHandlerAliasErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, yaml, want string }{
		{"not a mapping", "name: wf\nhandler_aliases: [a]\nsteps: [{name: a, handler: x.a}]\n", "must be a mapping"},
		{"empty target", "name: wf\nhandler_aliases: {A::B: ''}\nsteps: [{name: a, handler: A::B}]\n", "maps to an empty handler"},
		{"bad target", "name: wf\nhandler_aliases: {A::B: 'lambda:'}\nsteps: [{name: a, handler: A::B}]\n", "invalid Lambda function name"},
		{"chain", "name: wf\nhandler_aliases: {A::B: A::C, A::C: x.a}\nsteps: [{name: a, handler: A::B}]\n", "itself an alias"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := template.Parse("bad.yaml", []byte(c.yaml), template.Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// A load names every unmapped handler in one error, with where each is
// used, and reads handler_aliases.yaml at its root.
func TestUnknownHandlersGathered(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte("name: a\nsteps:\n  - {name: s, handler_class: Shop::AHandler}\n  - {name: t, handler_class: Shop::BHandler}\n")},
		"b.yaml": {Data: []byte("name: b\nsteps:\n  - {name: s, handler_class: Shop::AHandler}\n  - {name: t, handler_class: Shop::CHandler}\n")},
	}
	_, err := template.LoadFS(fsys, template.Options{Handlers: handlerSet{}})
	var es template.Errors
	if !errors.As(err, &es) || len(es) != 1 || !errors.Is(err, template.ErrUnknownHandler) {
		t.Fatalf("err = %v, want one ErrUnknownHandler problem", err)
	}
	for _, w := range []string{"3 unknown handlers", "Shop::AHandler (a.yaml:3, b.yaml:3)", "Shop::BHandler (a.yaml:4)", "Shop::CHandler (b.yaml:4)", "handler_aliases"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to contain %q", err, w)
		}
	}

	fsys["handler_aliases.yaml"] = &fstest.MapFile{Data: []byte("Shop::AHandler: tasker.noop\nShop::BHandler: 'lambda:b'\nShop::CHandler: x.c\n")}
	set, err := template.LoadFS(fsys, template.Options{Handlers: handlerSet{"x.c": true}})
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 {
		t.Fatalf("loaded %d templates, want 2 (the aliases file is no template)", set.Len())
	}
	dir := t.TempDir()
	for name, f := range fsys {
		if err := os.WriteFile(filepath.Join(dir, name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := template.LoadDir(dir, template.Options{Handlers: handlerSet{"x.c": true}}); err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "handler_aliases.yaml"), []byte("- not a map\n"), 0o644)
	if _, err := template.LoadDir(dir, template.Options{}); err == nil || !strings.Contains(err.Error(), "must be a mapping") {
		t.Fatalf("LoadDir with a bad aliases file: err = %v", err)
	}
}

func TestInputs(t *testing.T) {
	t.Parallel()
	src := `
name: wf
steps:
  - {name: a, handler: tasker.noop}
  - {name: b, handler: tasker.noop, depends_on: a}
  - {name: c, handler: tasker.noop, depends_on: b}
  - {name: d, handler: tasker.noop, depends_on: c, inputs: all}
  - {name: e, handler: tasker.noop, depends_on: c, inputs: [a]}
  - {name: f, handler: tasker.noop, depends_on: c}
`
	tpl, err := template.Parse("wf.yaml", []byte(src), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"d": {"a", "b", "c"}, "e": {"a", "c"}, "f": nil} {
		s, _ := tpl.Step(name)
		if !reflect.DeepEqual(s.Inputs, want) {
			t.Errorf("step %s: Inputs = %v, want %v", name, s.Inputs, want)
		}
	}
	for _, c := range []struct{ inputs, want string }{
		{"some", `must be "all" or a list of step names`},
		{"[z]", `unknown step "z"`},
		{"[x]", `step "x" is not an ancestor`},
		{"[y]", "cannot read its own result"},
	} {
		bad := "name: wf\nsteps:\n  - {name: x, handler: tasker.noop}\n  - {name: y, handler: tasker.noop, inputs: " + c.inputs + "}\n"
		if _, err := template.Parse("bad.yaml", []byte(bad), template.Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("inputs %s: err = %v, want %q", c.inputs, err, c.want)
		}
	}
}

func TestApplyDefaults(t *testing.T) {
	t.Parallel()
	src := `
name: wf
context_schema:
  type: object
  required: [user]
  properties:
    plan: {type: string, default: free}
    tags: {type: array, default: ['#data']}
    big: {type: integer, default: 12345678901234567890}
    user:
      type: object
      properties:
        email: {type: string}
        marketing: {type: boolean, default: false}
    prefs:
      type: object
      default: {}
      properties:
        theme: {type: string, default: dark}
  allOf:
    - properties:
        source: {type: string, default: web}
steps:
  - {name: a, handler: tasker.noop}
`
	tpl, err := template.Parse("wf.yaml", []byte(src), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ in, want string }{
		{`{"user":{"email":"a@b.c"}}`, `{"big":12345678901234567890,"plan":"free","prefs":{"theme":"dark"},"source":"web","tags":["#data"],"user":{"email":"a@b.c","marketing":false}}`},
		{`{"user":{"marketing":true},"plan":"pro","prefs":{"theme":"light"},"tags":[],"big":1,"source":"api"}`, ``}, // nothing to fill: unchanged bytes
		{`[1]`, ``}, // not an object: left to ValidateContext
		{`{"user":1}`, `{"big":12345678901234567890,"plan":"free","prefs":{"theme":"dark"},"source":"web","tags":["#data"],"user":1}`},
	}
	for _, c := range cases {
		got, err := tpl.ApplyDefaults(json.RawMessage(c.in))
		if err != nil {
			t.Fatal(err)
		}
		want := c.want
		if want == "" {
			want = c.in
		}
		if string(got) != want {
			t.Errorf("ApplyDefaults(%s) = %s, want %s", c.in, got, want)
		}
	}
	// Defaults are copied: filling one context never shares maps with another.
	a, _ := tpl.ApplyDefaults(json.RawMessage(`{"user":{}}`))
	b, _ := tpl.ApplyDefaults(json.RawMessage(`{"user":{}}`))
	if string(a) != string(b) {
		t.Fatalf("two fills differ: %s vs %s", a, b)
	}
}
