package dev

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseOptionsDefaults(t *testing.T) {
	t.Parallel()
	o, err := parseOptions(nil, envMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:8080" || o.maxInFlight != 1000 || o.workers != 64 || o.sweep != 2*time.Second || o.logLevel != slog.LevelInfo {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseOptions([]string{"-max-in-flight", "0", "-workers", "8", "-sweep-interval", "500ms"},
		envMap(map[string]string{"TASKER_MAX_IN_FLIGHT": "50", "LOG_LEVEL": "DEBUG", "TASKER_ADDR": ":9000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != ":9000" || o.maxInFlight != 0 || o.workers != 8 || o.sweep != 500*time.Millisecond || o.logLevel != slog.LevelDebug {
		t.Errorf("set: %+v", o)
	}
	if o, err := parseOptions(nil, envMap(map[string]string{"DATABASE_URL": "postgres://u:secret@h/d"}), io.Discard); err != nil || o.dbURL != "postgres://u:secret@h/d" {
		t.Errorf("DATABASE_URL: %+v, %v", o, err)
	}
	var help bytes.Buffer
	if _, err := parseOptions([]string{"-h"}, envMap(map[string]string{"DATABASE_URL": "postgres://u:secret@h/d"}), &help); err == nil || strings.Contains(help.String(), "secret") {
		t.Errorf("--help shows the database password: %q", help.String())
	}
	if o, err := parseOptions(nil, envMap(map[string]string{"TASKER_MAX_IN_FLIGHT": "50"}), io.Discard); err != nil || o.maxInFlight != 50 {
		t.Errorf("TASKER_MAX_IN_FLIGHT=50: %+v, %v", o, err)
	}
}

// TestInvalidConfigurationIsAStartupError: an invalid flag or variable is
// an error naming it and the accepted range, never a silent default
// (issue 14).
func TestInvalidConfigurationIsAStartupError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args       []string
		env        map[string]string
		wantSubstr string
	}{
		{env: map[string]string{"TASKER_MAX_IN_FLIGHT": "-3"}, wantSubstr: `TASKER_MAX_IN_FLIGHT="-3": want an integer from 0 to 100000`},
		{env: map[string]string{"TASKER_MAX_IN_FLIGHT": "lots"}, wantSubstr: `TASKER_MAX_IN_FLIGHT="lots": want an integer from 0 to 100000`},
		{env: map[string]string{"LOG_LEVEL": "loud"}, wantSubstr: `LOG_LEVEL="loud": want one of debug, info, warn, error`},
		{args: []string{"-max-in-flight", "-1"}, wantSubstr: `-max-in-flight="-1": want an integer from 0 to 100000`},
		{args: []string{"-workers", "0"}, wantSubstr: `-workers="0": want an integer from 1 to 4096`},
		{args: []string{"-sweep-interval", "-2s"}, wantSubstr: `-sweep-interval="-2s": want a duration (such as 30s or 5m) from 10ms to 1h`},
		{args: []string{"-sweep-interval", "0s"}, wantSubstr: `-sweep-interval="0s"`},
		{args: []string{"extra"}, wantSubstr: `unexpected argument "extra"`},
	} {
		_, err := parseOptions(tc.args, envMap(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) {
			t.Errorf("%v %v: err = %v; want it to contain %q", tc.args, tc.env, err, tc.wantSubstr)
		}
	}
	// The flag package reports unparsable values itself, naming the flag.
	var stderr bytes.Buffer
	if _, err := parseOptions([]string{"-workers", "many"}, envMap(nil), &stderr); err == nil || !strings.Contains(stderr.String(), "-workers") {
		t.Errorf("-workers many: %v, %q", err, stderr.String())
	}
}

// TestRunRefusesInvalidConfiguration: Run exits 2 with the error before
// starting anything.
func TestRunRefusesInvalidConfiguration(t *testing.T) {
	t.Setenv("TASKER_MAX_IN_FLIGHT", "-3")
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), nil, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `tasker dev: TASKER_MAX_IN_FLIGHT="-3": want an integer from 0 to 100000`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	t.Setenv("TASKER_MAX_IN_FLIGHT", "")
	stderr.Reset()
	if code := Run(context.Background(), []string{"-workers=-1"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `-workers="-1": want an integer from 1 to 4096`) {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
