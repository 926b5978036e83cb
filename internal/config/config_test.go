package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/config"
)

func env(kv ...string) config.Getenv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestInt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v       string
		want    int
		wantErr string
	}{
		{"", 7, ""},
		{"  ", 7, ""},
		{"0", 0, ""},
		{" 42 ", 42, ""},
		{"100", 100, ""},
		{"-3", 0, `N="-3": want an integer from 0 to 100`},
		{"101", 0, `N="101": want an integer from 0 to 100`},
		{"ten", 0, `N="ten": want an integer from 0 to 100`},
		{"1.5", 0, `N="1.5": want an integer from 0 to 100`},
	} {
		got, err := config.Int(env("N", tc.v), "N", 7, 0, 100)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Int(%q) = %d, %v; want error %q", tc.v, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Int(%q) = %d, %v; want %d", tc.v, got, err, tc.want)
		}
	}
	if err := config.CheckInt("-workers", 0, 1, 10); err == nil || err.Error() != `-workers="0": want an integer from 1 to 10` {
		t.Errorf("CheckInt: %v", err)
	}
	if err := config.CheckInt("-workers", 10, 1, 10); err != nil {
		t.Errorf("CheckInt(10): %v", err)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v       string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Minute, false},
		{"1s", time.Second, false},
		{"24h", 24 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"25h", 0, true},
		{"10", 0, true},
		{"soon", 0, true},
	} {
		got, err := config.Duration(env("D", tc.v), "D", time.Minute, time.Second, 24*time.Hour)
		if tc.wantErr {
			want := `D="` + tc.v + `": want a duration (such as 30s or 5m) from 1s to 24h`
			if err == nil || err.Error() != want {
				t.Errorf("Duration(%q) = %v, %v; want error %q", tc.v, got, err, want)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Duration(%q) = %v, %v; want %v", tc.v, got, err, tc.want)
		}
	}
	if err := config.CheckDuration("-sweep-interval", 0, time.Millisecond, time.Hour); err == nil ||
		!strings.Contains(err.Error(), `-sweep-interval="0s"`) || !strings.Contains(err.Error(), "from 1ms to 1h") {
		t.Errorf("CheckDuration: %v", err)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Millisecond: "1ms", time.Second: "1s", 5 * time.Minute: "5m", 24 * time.Hour: "24h",
		90 * time.Minute: "1h30m", 61 * time.Second: "1m1s", 8760 * time.Hour: "8760h",
	} {
		if got := config.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFloat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    string
		want float64
		ok   bool
	}{
		{"", 1, true}, {"0", 0, true}, {"0.25", 0.25, true}, {"1", 1, true},
		{"-0.1", 0, false}, {"1.5", 0, false}, {"half", 0, false},
	} {
		got, err := config.Float(env("F", tc.v), "F", 1, 0, 1)
		if !tc.ok {
			if want := `F="` + tc.v + `": want a number from 0 to 1`; err == nil || err.Error() != want {
				t.Errorf("Float(%q) = %v, %v; want error %q", tc.v, got, err, want)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Float(%q) = %v, %v; want %v", tc.v, got, err, tc.want)
		}
	}
}

func TestBool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v, wantErr string
		def, want  bool
	}{
		{"", "", true, true},
		{"", "", false, false},
		{"true", "", false, true},
		{"FALSE", "", true, false},
		{"1", "", false, true},
		{"yes", `B="yes": want true or false`, false, false},
		{"on", `B="on": want true or false`, false, false},
	} {
		got, err := config.Bool(env("B", tc.v), "B", tc.def)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Bool(%q) = %v, %v; want error %q", tc.v, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Bool(%q) = %v, %v; want %v", tc.v, got, err, tc.want)
		}
	}
}

func TestEnum(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ v, want, wantErr string }{
		{"", "b", ""},
		{"a", "a", ""},
		{" C ", "c", ""},
		{"d", "", `E="d": want one of a, b, c`},
	} {
		got, err := config.Enum(env("E", tc.v), "E", "b", "a", "b", "c")
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Enum(%q) = %q, %v; want error %q", tc.v, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Enum(%q) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
}

func TestLogLevel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    string
		want slog.Level
		ok   bool
	}{
		{"", slog.LevelInfo, true},
		{"debug", slog.LevelDebug, true},
		{"DEBUG", slog.LevelDebug, true},
		{"Info", slog.LevelInfo, true},
		{"warn", slog.LevelWarn, true},
		{"error", slog.LevelError, true},
		{"warning", 0, false},
		{"trace", 0, false},
		{"info+2", 0, false}, // slog's own syntax is not accepted
	} {
		got, err := config.LogLevel(env("LOG_LEVEL", tc.v))
		if !tc.ok {
			if err == nil || !strings.HasPrefix(err.Error(), `LOG_LEVEL="`+tc.v+`": want one of debug, info, warn, error`) {
				t.Errorf("LogLevel(%q) = %v, %v; want an error naming LOG_LEVEL", tc.v, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("LogLevel(%q) = %v, %v; want %v", tc.v, got, err, tc.want)
		}
	}
}
