package devdb_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/cli/devdb"
)

func TestConnect(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		name, flag string
		env        map[string]string
		wantURL    string
		wantErr    string
		code       int
	}{
		{"the flag wins", "postgres://flag/db", map[string]string{"DATABASE_URL": "postgres://env/db"}, "postgres://flag/db", "", 0},
		{"else DATABASE_URL", "", map[string]string{"DATABASE_URL": "postgres://env/db", "LOG_LEVEL": "DEBUG"}, "postgres://env/db", "", 0},
		{"a bad LOG_LEVEL", "postgres://flag/db", map[string]string{"LOG_LEVEL": "loud"}, "", `LOG_LEVEL="loud"`, 2},
	} {
		var stderr bytes.Buffer
		url, stop, err := devdb.Connect(t.Context(), c.flag, env(c.env), &stderr)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, devdb.ErrUsage) || devdb.ExitCode(err) != c.code {
				t.Errorf("%s: %v (exit %d), want an error naming %s, exit %d", c.name, err, devdb.ExitCode(err), c.wantErr, c.code)
			}
			continue
		}
		if err != nil || url != c.wantURL {
			t.Errorf("%s: %q, %v; want %q", c.name, url, err, c.wantURL)
			continue
		}
		stop() // nothing started: does nothing
	}
	if devdb.ExitCode(errors.New("connection refused")) != 1 {
		t.Error("a database error is exit status 1")
	}
}
