package migrate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/cli/devdb"
	dbmigrate "github.com/taskerhq/tasker/internal/migrate"
)

// TestMigrateEmbedded runs `tasker migrate` with no DATABASE_URL, as a
// developer would on a fresh checkout: it starts the embedded Postgres in
// .tasker/pgdata, migrates, stops; a second run finds nothing to do.
func TestMigrateEmbedded(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("DATABASE_URL", "")
	ms, err := dbmigrate.Load()
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1].Version

	for i, want := range []string{
		"applied " + ms[0].File + "\n",
		"database is up to date (version " + last + ")\n",
	} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		began := time.Now()
		code := Run(ctx, nil, &stdout, &stderr)
		cancel()
		t.Logf("run %d took %v", i+1, time.Since(began).Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", i+1, code, stdout.String(), stderr.String())
		}
		if i == 0 && !strings.Contains(stdout.String(), "applied functions ") {
			t.Errorf("run 1: stdout %q does not say the function files were applied", stdout.String())
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d: stdout %q does not contain %q", i+1, stdout.String(), want)
		}
		if _, err := os.Stat(filepath.Join(devdb.DataDir, "postmaster.pid")); err == nil {
			t.Errorf("run %d: server still running after migrate (postmaster.pid present)", i+1)
		}
	}

	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"--status"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--status: exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "pending") || !strings.Contains(stdout.String(), "applied  "+ms[0].File) ||
		!strings.Contains(stdout.String(), "functions current") {
		t.Errorf("--status output:\n%s", stdout.String())
	}
}

func TestMigrateRejectsArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

// TestMigrateRefusesInvalidLogLevel: an invalid LOG_LEVEL is a start-up
// error naming it, before any database is touched (issue 14).
func TestMigrateRefusesInvalidLogLevel(t *testing.T) {
	t.Setenv("LOG_LEVEL", "loud")
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:1/d?connect_timeout=1")
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), nil, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `LOG_LEVEL="loud": want one of debug, info, warn, error`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// The database set-up is devdb.Connect's, shared with tasker prune: a bad
// LOG_LEVEL is a usage error (exit 2) naming it, before any database.
func TestMigrateSetupErrors(t *testing.T) {
	t.Setenv("LOG_LEVEL", "loud")
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), []string{"--database-url", "postgres://127.0.0.1:1/none"}, &stdout, &stderr)
	if code != 2 || !strings.HasPrefix(stderr.String(), "tasker migrate: ") || !strings.Contains(stderr.String(), `LOG_LEVEL="loud"`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
