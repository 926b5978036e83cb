package lambdaapp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
)

// TestHandlersFunctionHTTPPolicy: the handlers function reads the
// tasker.http policy at setup, refuses invalid values naming the variable,
// and denies private addresses unless told otherwise.
func TestHandlersFunctionHTTPPolicy(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	payload, _ := json.Marshal(contract.Payload{
		Tasker: contract.Meta{Version: 1, Step: "s", Handler: "tasker.http", Attempt: 1, MaxAttempts: 3},
		Config: json.RawMessage(`{"url":"` + srv.URL + `/hook","timeout_seconds":5}`),
	})
	tests := []struct {
		name     string
		env      env
		setupErr string // the variable a setup error must name
		code     string // tasker_error code; "" = success
	}{
		{name: "deny-private by default", env: env{}, code: "address_denied"},
		{name: "deny-private off", env: env{"TASKER_HTTP_DENY_PRIVATE": "false"}},
		{name: "allow-list", env: env{"TASKER_HTTP_DENY_PRIVATE": "false", "TASKER_HTTP_ALLOWED_HOSTS": "*.example.com"}, code: "host_not_allowed"},
		{name: "bad switch", env: env{"TASKER_HTTP_DENY_PRIVATE": "sometimes"}, setupErr: "TASKER_HTTP_DENY_PRIVATE"},
		{name: "bad host", env: env{"TASKER_HTTP_ALLOWED_HOSTS": "https://api.example.com/"}, setupErr: "TASKER_HTTP_ALLOWED_HOSTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := lambdaapp.Handlers(examples.Register)
			d := lambdaapp.Deps{Getenv: tt.env.get, Logs: io.Discard}
			if tt.setupErr != "" {
				if _, err := f.Handler(context.Background(), d); err == nil || !strings.Contains(err.Error(), tt.setupErr) {
					t.Fatalf("setup error %v, want one naming %s", err, tt.setupErr)
				}
				return
			}
			h := handlerOf[func(context.Context, json.RawMessage) (json.RawMessage, error)](t, f, d)
			out, err := h(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			he, isErr := contract.AsHandlerError(out)
			if tt.code == "" && isErr || tt.code != "" && (!isErr || he.Code != tt.code || !he.Permanent) {
				t.Errorf("got %s, want code %q", out, tt.code)
			}
		})
	}
}
