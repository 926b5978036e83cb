package devserver

import (
	"context"
	"strings"
	"testing"
)

// TestStartRefusesNegativeOptions: zero means the default; a negative
// value is an error, never silently replaced (issue 14).
func TestStartRefusesNegativeOptions(t *testing.T) {
	t.Parallel()
	_, err := Start(context.Background(), Options{Workers: -1, SweepInterval: -1, HTTP: HTTPLimits{MaxConns: -5}})
	for _, want := range []string{"Options.Workers is negative", "Options.SweepInterval is negative", "Options.HTTP.MaxConns is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v; want it to contain %q", err, want)
		}
	}
	if err := (Options{}).check(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}
