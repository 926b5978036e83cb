package api

import "testing"

// A callback token authorises its route, so it never reaches a log line
// or a span.
func TestRedactPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/v1/callbacks/AaJKHQ0Ae/success": "/v1/callbacks/{token}/success",
		"/v1/callbacks/AaJKHQ0Ae":         "/v1/callbacks/{token}",
		"/v1/tasks/x/steps/y/complete":    "/v1/tasks/x/steps/y/complete",
	} {
		if got := redactPath(in); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
