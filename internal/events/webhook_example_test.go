package events_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
)

// A receiver checks each delivery before trusting it.
func ExampleVerifyWebhook() {
	secret := "whsec_example"
	body := []byte(`{"name":"task.failed","task_id":"…"}`)
	sent := time.Unix(1767225600, 0)
	h := http.Header{}
	h.Set(events.HeaderTimestamp, "1767225600")
	h.Set(events.HeaderSignature, events.Sign(secret, sent.Unix(), body))

	fmt.Println(events.VerifyWebhook(secret, h, body, sent.Add(time.Minute), 5*time.Minute))
	fmt.Println(events.VerifyWebhook("another-secret", h, body, sent, 5*time.Minute))
	fmt.Println(events.VerifyWebhook(secret, h, body, sent.Add(time.Hour), 5*time.Minute))
	// Output:
	// <nil>
	// webhook signature does not verify
	// webhook signature does not verify: timestamp 1767225600 is 1h0m0s from now
}

func ExampleNewWebhooks_denyPrivate() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	w := events.NewWebhooks(events.WebhookOptions{DenyPrivate: true, Timeout: 5 * time.Second})
	_, err := w.SendWebhook(context.Background(), engine.WebhookDelivery{URL: srv.URL, Secret: "s", Body: []byte(`{}`), Time: time.Now()})
	fmt.Println(err != nil && strings.Contains(err.Error(), "private or local address"))
	// Output: true
}
