package tasks

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunRefusesInvalidInterval: --interval out of range is an error naming
// it and the range, not the default (issue 14).
func TestRunRefusesInvalidInterval(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0s", "-1s", "2m"} {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), []string{"--watch", "--interval", v, "a/b"}, &stdout, &stderr)
		if want := `--interval="` + v + `": want a duration (such as 30s or 5m) from 10ms to 1m`; code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("--interval %s: exit %d, stderr %q", v, code, stderr.String())
		}
	}
}
