// Package config parses configuration values from the environment (or
// flags) strictly: an invalid value is an error naming the variable and
// the accepted values, never a silent default (docs/DESIGN §11). An unset
// or blank variable keeps its default. It imports nothing of the module.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// MaxInFlightLimit bounds TASKER_MAX_IN_FLIGHT (and tasker dev's
// -max-in-flight), in Lambda and local mode alike: from 0 (no cap) to it.
const MaxInFlightLimit = 100000

// Getenv reads one variable (os.Getenv, or a map in tests).
type Getenv func(string) string

// EnvLogLevel is the variable naming the log level.
const EnvLogLevel = "LOG_LEVEL"

func get(getenv Getenv, name string) string {
	if getenv == nil {
		return ""
	}
	return strings.TrimSpace(getenv(name))
}

// Int reads name as an integer from lo to hi; unset, it is def.
func Int(getenv Getenv, name string, def, lo, hi int) (int, error) {
	v := get(getenv, name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, intError(name, v, lo, hi)
	}
	return n, nil
}

// CheckInt checks a value already parsed (a flag's): name is how the user
// set it ("-workers").
func CheckInt(name string, n, lo, hi int) error {
	if n < lo || n > hi {
		return intError(name, strconv.Itoa(n), lo, hi)
	}
	return nil
}

func intError(name, v string, lo, hi int) error {
	return fmt.Errorf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
}

// Duration reads name as a Go duration (such as 30s or 12h) from lo to hi;
// unset, it is def.
func Duration(getenv Getenv, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := get(getenv, name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, durationError(name, v, lo, hi)
	}
	return d, nil
}

// CheckDuration checks a duration already parsed (a flag's).
func CheckDuration(name string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return durationError(name, FormatDuration(d), lo, hi)
	}
	return nil
}

func durationError(name, v string, lo, hi time.Duration) error {
	return fmt.Errorf("%s=%q: want a duration (such as 30s or 5m) from %s to %s", name, v, FormatDuration(lo), FormatDuration(hi))
}

// FormatDuration is d without trailing zero units (24h, not 24h0m0s).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Float reads name as a decimal number from lo to hi; unset, it is def.
func Float(getenv Getenv, name string, def, lo, hi float64) (float64, error) {
	v := get(getenv, name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi {
		return 0, fmt.Errorf("%s=%q: want a number from %g to %g", name, v, lo, hi)
	}
	return f, nil
}

// Bool reads name as true or false (also 1/0, t/f, as strconv.ParseBool);
// unset, it is def.
func Bool(getenv Getenv, name string, def bool) (bool, error) {
	v := get(getenv, name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// Enum reads name as one of allowed, case-insensitively, and returns it as
// spelled in allowed; unset, it is def.
func Enum(getenv Getenv, name, def string, allowed ...string) (string, error) {
	v := get(getenv, name)
	if v == "" {
		return def, nil
	}
	return CheckEnum(name, v, allowed...)
}

// CheckEnum checks v against allowed, case-insensitively.
func CheckEnum(name, v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if strings.EqualFold(strings.TrimSpace(v), a) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%s=%q: want one of %s", name, v, strings.Join(allowed, ", "))
}

// LogLevels are the values LOG_LEVEL accepts.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogLevel reads LOG_LEVEL: debug, info, warn or error, case-insensitive;
// unset, info. Anything else is an error. Lambda and local mode both use it.
func LogLevel(getenv Getenv) (slog.Level, error) {
	v, err := Enum(getenv, EnvLogLevel, "info", LogLevels...)
	if err != nil {
		return slog.LevelInfo, err
	}
	return map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[v], nil
}
