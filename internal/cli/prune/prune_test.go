package prune

import (
	"bytes"
	"strings"
	"testing"
)

// The database set-up is devdb.Connect's, shared with tasker migrate: a
// bad LOG_LEVEL is a usage error (exit 2) naming it, before any database.
func TestPruneSetupErrors(t *testing.T) {
	t.Setenv("LOG_LEVEL", "loud")
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), []string{"--older-than", "90d", "--database-url", "postgres://127.0.0.1:1/none"}, &stdout, &stderr)
	if code != 2 || !strings.HasPrefix(stderr.String(), "tasker prune: ") || !strings.Contains(stderr.String(), `LOG_LEVEL="loud"`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
