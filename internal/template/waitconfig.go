package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Built-in handlers of durable waits (docs/architecture.md, "Callbacks").
const (
	// HandlerWait parks the step until config.seconds have passed or
	// config.until (RFC 3339) is reached; it invokes no handler.
	HandlerWait = "tasker.wait"
	// HandlerCallback parks the step until a callback completes it or
	// config.timeout_seconds pass; config.notify, a tasker.http request,
	// is sent first and receives the callback token.
	HandlerCallback = "tasker.callback"
)

// Callback timeouts, in seconds.
const (
	DefaultCallbackTimeoutSeconds = 86400
	MaxCallbackTimeoutSeconds     = 31_536_000
	// MaxWaitSeconds bounds tasker.wait's config.seconds (ten years).
	MaxWaitSeconds = 10 * 31_536_000
)

// waitPlaceholder matches a ${context.path} placeholder of tasker.wait.
var waitPlaceholder = regexp.MustCompile(`\$\{context\.([^}]+)\}`)

// WaitConfig is the config of a tasker.wait step: exactly one of Seconds
// and Until; either may hold ${context.path} placeholders, replaced from
// the task context when the step becomes ready.
type WaitConfig struct {
	Seconds string // a number of seconds, 0 to MaxWaitSeconds
	Until   string // an RFC 3339 time
}

// ParseWaitConfig reads a tasker.wait config.
func ParseWaitConfig(config json.RawMessage) (WaitConfig, error) {
	var raw map[string]any
	if err := json.Unmarshal(config, &raw); err != nil {
		return WaitConfig{}, fmt.Errorf("config: %w", err)
	}
	if pr := waitConfigProblems(raw); len(pr) > 0 {
		return WaitConfig{}, fmt.Errorf("config.%s: %s", pr[0].field, pr[0].msg)
	}
	var c WaitConfig
	switch v := raw["seconds"].(type) {
	case string:
		c.Seconds = v
	case float64:
		c.Seconds = strconv.FormatFloat(v, 'f', -1, 64)
	}
	c.Until, _ = raw["until"].(string)
	return c, nil
}

// Due returns when the wait ends for a step that became ready at now,
// with the placeholders replaced from the task context.
func (c WaitConfig) Due(now time.Time, taskContext json.RawMessage) (time.Time, error) {
	if c.Until != "" {
		s, err := expandPlaceholders(c.Until, taskContext)
		if err != nil {
			return time.Time{}, fmt.Errorf("config.until: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("config.until: %q is not an RFC 3339 time such as 2026-12-24T18:00:00Z", s)
		}
		return t.UTC(), nil
	}
	s, err := expandPlaceholders(c.Seconds, taskContext)
	if err != nil {
		return time.Time{}, fmt.Errorf("config.seconds: %w", err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > MaxWaitSeconds {
		return time.Time{}, fmt.Errorf("config.seconds: %q is not a number of seconds from 0 to %d", s, MaxWaitSeconds)
	}
	return now.Add(time.Duration(f * float64(time.Second))), nil
}

// expandPlaceholders replaces ${context.path} by the value at the dotted
// path of the task context (a string as it is, a number in its JSON
// spelling); an absent path or an object or array is an error.
func expandPlaceholders(s string, taskContext json.RawMessage) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var ctx any
	if len(taskContext) > 0 {
		if err := json.Unmarshal(taskContext, &ctx); err != nil {
			return "", fmt.Errorf("task context: %w", err)
		}
	}
	var firstErr error
	out := waitPlaceholder.ReplaceAllStringFunc(s, func(m string) string {
		path := waitPlaceholder.FindStringSubmatch(m)[1]
		cur := ctx
		for _, seg := range strings.Split(path, ".") {
			obj, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = obj[seg]
		}
		switch v := cur.(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("${context.%s} is not a string or number in the task context", path)
		}
		return m
	})
	return out, firstErr
}

// waitConfigProblems checks a tasker.wait config: exactly one of seconds
// (a number from 0 to MaxWaitSeconds, or a string with placeholders) and
// until (an RFC 3339 time, or a string with placeholders).
func waitConfigProblems(cfg map[string]any) []problem {
	sec, hasSec := cfg["seconds"]
	until, hasUntil := cfg["until"]
	switch {
	case hasSec && hasUntil:
		return []problem{{"seconds", "set seconds or until, not both"}}
	case !hasSec && !hasUntil:
		return []problem{{"seconds", fmt.Sprintf("handler %s needs config.seconds or config.until", HandlerWait)}}
	case hasSec:
		if s, ok := sec.(string); ok && waitPlaceholder.MatchString(s) {
			return nil
		}
		f, ok := jsonNumber(sec)
		if !ok || f < 0 || f > MaxWaitSeconds {
			return []problem{{"seconds", fmt.Sprintf("must be a number of seconds from 0 to %d (or a ${context.x} placeholder), got %s", MaxWaitSeconds, describeJSON(sec))}}
		}
	default:
		s, ok := until.(string)
		if ok && waitPlaceholder.MatchString(s) {
			return nil
		}
		if _, err := time.Parse(time.RFC3339Nano, s); !ok || err != nil {
			return []problem{{"until", fmt.Sprintf("must be an RFC 3339 time such as 2026-12-24T18:00:00Z (or a ${context.x} placeholder), got %s", describeJSON(until))}}
		}
	}
	return nil
}

// CallbackConfig is the config of a tasker.callback step.
type CallbackConfig struct {
	// TimeoutSeconds is how long the step waits for its callback (and what
	// a heartbeat extends the wait by); default 86400, at most 31,536,000.
	TimeoutSeconds int
	// Notify, when set, is a tasker.http config: the request sent when the
	// step starts waiting, carrying its callback token.
	Notify json.RawMessage
}

// ParseCallbackConfig reads a tasker.callback config.
func ParseCallbackConfig(config json.RawMessage) (CallbackConfig, error) {
	var raw map[string]any
	if err := json.Unmarshal(config, &raw); err != nil {
		return CallbackConfig{}, fmt.Errorf("config: %w", err)
	}
	if pr := callbackConfigProblems(raw); len(pr) > 0 {
		return CallbackConfig{}, fmt.Errorf("config.%s: %s", pr[0].field, pr[0].msg)
	}
	c := CallbackConfig{TimeoutSeconds: DefaultCallbackTimeoutSeconds}
	if f, ok := raw["timeout_seconds"].(float64); ok {
		c.TimeoutSeconds = int(f)
	}
	if n, ok := raw["notify"]; ok && n != nil {
		b, err := json.Marshal(n)
		if err != nil {
			return CallbackConfig{}, errors.New("config.notify cannot be represented as JSON")
		}
		c.Notify = b
	}
	return c, nil
}

// callbackConfigProblems checks a tasker.callback config: timeout_seconds
// a whole number from 1 to MaxCallbackTimeoutSeconds; notify a mapping
// that is a valid tasker.http config.
func callbackConfigProblems(cfg map[string]any) []problem {
	var out []problem
	if v, ok := cfg["timeout_seconds"]; ok {
		f, isNum := jsonNumber(v)
		if !isNum || f != math.Trunc(f) || f < 1 || f > MaxCallbackTimeoutSeconds {
			out = append(out, problem{"timeout_seconds", fmt.Sprintf("must be a whole number of seconds from 1 to %d, got %s", MaxCallbackTimeoutSeconds, describeJSON(v))})
		}
	}
	if v, ok := cfg["notify"]; ok {
		n, isMap := v.(map[string]any)
		if !isMap {
			return append(out, problem{"notify", fmt.Sprintf("must be a mapping with a tasker.http request (url, method, headers, body), got %s", describeJSON(v))})
		}
		if u, _ := n["url"].(string); strings.TrimSpace(u) == "" {
			out = append(out, problem{"notify.url", "is required"})
		}
		for _, pr := range httpConfigProblems(n) {
			out = append(out, problem{"notify." + pr.field, pr.msg})
		}
	}
	return out
}
