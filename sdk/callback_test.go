package sdk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/sdk/contract"
)

func TestPendingIsTheTaskerPendingAnswer(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int{time.Hour: 3600, 0: contract.DefaultPendingTimeoutSeconds, 10 * time.Millisecond: 1} {
		b, err := json.Marshal(sdk.Pending(d))
		if err != nil {
			t.Fatal(err)
		}
		secs, herr, ok := contract.AsPending(b)
		if !ok || herr != nil || secs != want {
			t.Errorf("Pending(%s) = %s: %d %v %v, want %d", d, b, secs, herr, ok, want)
		}
	}
}

func TestCallbackBuiltinNotifiesWithTheToken(t *testing.T) {
	t.Parallel()
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	h, ok := sdk.NewRegistry().Lookup(sdk.BuiltinCallback)
	if !ok {
		t.Fatal("tasker.callback is not a built-in")
	}
	in := sdk.NewInput(contract.Payload{
		Tasker: contract.Meta{Step: "approve", Attempt: 1, CallbackToken: "tok-123"},
		Config: json.RawMessage(`{"timeout_seconds":600,"notify":{"url":"` + srv.URL + `","headers":{"X-Team":"ops"}}}`),
	})
	res, err := h(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if secs, _, ok := contract.AsPending(b); !ok || secs != 600 {
		t.Fatalf("result %s, want tasker_pending with 600 s", b)
	}
	if got.Get(sdk.CallbackTokenHeader) != "tok-123" || got.Get("X-Team") != "ops" {
		t.Fatalf("notify headers = %v", got)
	}
	// A notify endpoint that refuses fails the attempt as tasker.http would.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	if _, err := h(context.Background(), in); err == nil {
		t.Fatal("a 503 from the notify endpoint succeeded")
	}
}
