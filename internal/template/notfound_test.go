package template_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/taskerhq/tasker/internal/template"
)

func TestNotFoundDetail(t *testing.T) {
	t.Parallel()
	set, err := template.NewSet()
	if err != nil {
		t.Fatal(err)
	}
	_, missing := set.Get("shop", "order", "")
	for _, c := range []struct {
		name                  string
		err                   error
		detail                string
		workflowMissing, isNF bool
	}{
		{"a missing workflow", missing, "no workflow shop/order", true, true},
		{"a missing version", &template.NotFoundError{Namespace: "shop", Name: "order", Version: "3.0.0", Versions: []string{"1.0.0", "2.0.0"}},
			"no version 3.0.0 of shop/order (versions: 1.0.0, 2.0.0)", false, true},
		{"wrapped", fmt.Errorf("create: %w", missing), "no workflow shop/order", true, true},
		{"the bare sentinel", fmt.Errorf("%w: x", template.ErrNotFound), "no workflow shop/order", true, true},
		{"another error", errors.New("boom"), "", false, false},
	} {
		d, wm, ok := template.NotFoundDetail(c.err, "shop", "order")
		if d != c.detail || wm != c.workflowMissing || ok != c.isNF || errors.Is(c.err, template.ErrNotFound) != c.isNF {
			t.Errorf("%s: %q %v %v", c.name, d, wm, ok)
		}
	}
}

// Set.Get's error is template.ErrNotFound; its Detail is what the APIs say.
func ExampleNotFoundError() {
	set, _ := template.NewSet()
	_, err := set.Get("shop", "order", "2.0.0")
	var nf *template.NotFoundError
	fmt.Println(errors.Is(err, template.ErrNotFound), errors.As(err, &nf), nf.Detail())
	// Output: true true no workflow shop/order
}
