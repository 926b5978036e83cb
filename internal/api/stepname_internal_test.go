package api

import (
	"net/http/httptest"
	"testing"
)

// The step read route takes a map instance's name; the others take step
// names only (docs/control-flow.md, "Map").
func TestReadStepName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"convert", true},
		{"convert[0]", true},
		{"convert[59]", true},
		{"a.b-c[1234567890]", true},
		{"convert[]", false},
		{"convert[x]", false},
		{"convert[01]", false},
		{"convert[1", false},
		{"convert[1]x", false},
		{"[1]", false},
		{"-x[1]", false},
		{"convert[12345678901]", false},
		{"convert[1][2]", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.SetPathValue("step", tc.name)
			got, err := readStepName(r)
			if tc.ok && (err != nil || got != tc.name) {
				t.Errorf("readStepName(%q) = %q, %v", tc.name, got, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("readStepName(%q) accepted it", tc.name)
			}
			if _, err := stepName(r); tc.name != "convert" && err == nil {
				t.Errorf("stepName(%q) (write routes) accepted it", tc.name)
			}
		})
	}
}
