package template

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
)

// MaxHTTPTimeoutSeconds bounds a tasker.http step's config.timeout_seconds:
// a request cannot outlive the longest step.
const MaxHTTPTimeoutSeconds = MaxTimeoutSeconds

// httpPlaceholder matches the ${context.path} placeholders tasker.http
// substitutes at run time (sdk).
var httpPlaceholder = regexp.MustCompile(`\$\{context\.[^}]+\}`)

// problem is one invalid field of a step config; field is relative to the
// config ("url", "method", "timeout_seconds").
type problem struct {
	field, msg string
}

// httpConfigProblems checks the fields of a tasker.http config that would
// otherwise only fail, or misbehave, at run time: a URL that is not
// absolute http(s) (file://, gopher://, no host), a method that is not an
// HTTP token (a CRLF in it would split the request line), and a timeout
// that is not a positive number of seconds within MaxHTTPTimeoutSeconds
// (a huge one overflows time.Duration to a negative value), and a
// follow_redirects other than never or same_origin. Only the keys present
// in cfg are checked.
func httpConfigProblems(cfg map[string]any) []problem {
	var out []problem
	if v, ok := cfg["url"]; ok {
		if s, isStr := v.(string); isStr && strings.TrimSpace(s) != "" {
			if msg := checkHTTPURL(s); msg != "" {
				out = append(out, problem{"url", msg})
			}
		}
	}
	if v, ok := cfg["method"]; ok {
		s, _ := v.(string)
		if !isHTTPToken(s) {
			out = append(out, problem{"method", fmt.Sprintf("must be an HTTP method name such as GET or POST (letters, digits and !#$%%&'*+-.^_`|~ only), got %s", describeJSON(v))})
		}
	}
	if v, ok := cfg["follow_redirects"]; ok {
		if s, _ := v.(string); s != "never" && s != "same_origin" {
			out = append(out, problem{"follow_redirects", fmt.Sprintf("must be never or same_origin, got %s", describeJSON(v))})
		}
	}
	if v, ok := cfg["timeout_seconds"]; ok {
		f, isNum := jsonNumber(v)
		if !isNum || !(f > 0 && f <= MaxHTTPTimeoutSeconds) {
			out = append(out, problem{"timeout_seconds", fmt.Sprintf("must be a number of seconds greater than 0 and at most %d, got %s", MaxHTTPTimeoutSeconds, describeJSON(v))})
		}
	}
	return out
}

// checkHTTPURL validates the URL as written in the template, placeholders
// standing in for a plain path segment; the scheme, host and port must be
// written out before any context value is substituted, as tasker.http
// requires at run time (docs/security.md).
func checkHTTPURL(raw string) string {
	if loc := httpPlaceholder.FindStringIndex(raw); loc != nil {
		rest := raw
		if _, after, ok := strings.Cut(raw, "://"); ok {
			rest = after
		}
		authority := len(raw) - len(rest) + strings.IndexAny(rest+"/", "/?#")
		if loc[0] < authority {
			return fmt.Sprintf("URL %q has a placeholder before its path: the scheme, host and port must come from the template, placeholders only in the path or query", raw)
		}
	}
	u, err := url.Parse(httpPlaceholder.ReplaceAllString(raw, "x"))
	switch {
	case err != nil:
		return fmt.Sprintf("invalid URL %q: %v", raw, unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("URL %q must use http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("URL %q has no host", raw)
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// isHTTPToken reports whether s is an RFC 9110 token, the syntax of a method.
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// jsonNumber returns v as a float64 when toJSON produced a finite number.
func jsonNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	}
	return 0, false
}

// describeJSON names a value produced by toJSON for an error message.
func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", x)
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return fmt.Sprint(x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}
