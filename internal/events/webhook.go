package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskerhq/tasker/internal/engine"
)

// Webhook request headers (docs/operating.md, "Webhook subscriptions").
const (
	HeaderEvent     = "X-Tasker-Event"
	HeaderDelivery  = "X-Tasker-Delivery"
	HeaderTimestamp = "X-Tasker-Timestamp"
	HeaderSignature = "X-Tasker-Signature"
)

// Sign returns the signature header value of a delivery: "v1=" and the hex
// HMAC-SHA256, keyed by the subscription's secret, of the decimal Unix
// timestamp, a dot and the body.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by VerifyWebhook for a request that was not
// signed with the secret, or whose timestamp is outside the tolerance.
var ErrBadSignature = errors.New("webhook signature does not verify")

// VerifyWebhook checks a received delivery: the signature over the
// timestamp and body, and a timestamp within tolerance of now (replays of
// an old delivery fail). Receivers written in Go can call it directly.
func VerifyWebhook(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not a Unix timestamp", ErrBadSignature, HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s from now", ErrBadSignature, ts, d.Round(time.Second))
	}
	want := Sign(secret, ts, body)
	for _, got := range strings.Split(h.Get(HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}

// WebhookOptions configure Webhooks.
type WebhookOptions struct {
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// DenyPrivate refuses to connect to loopback, private, link-local and
	// unspecified addresses (on in Lambda: a subscription must not reach
	// into the VPC or the metadata endpoint).
	DenyPrivate bool
	// Client replaces the HTTP client (tests); Timeout and DenyPrivate are
	// then the client's business.
	Client *http.Client
}

// Webhooks sends signed webhook deliveries over HTTP; it implements
// engine.WebhookSender. Redirects are not followed: a 3xx is a failure.
type Webhooks struct {
	client *http.Client
}

var _ engine.WebhookSender = (*Webhooks)(nil)

// NewWebhooks returns the sender.
func NewWebhooks(o WebhookOptions) *Webhooks {
	if o.Client != nil {
		return &Webhooks{client: o.Client}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	d := &net.Dialer{Timeout: o.Timeout}
	if o.DenyPrivate {
		d.Control = denyPrivate
	}
	tr := &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute,
		TLSHandshakeTimeout: o.Timeout}
	return &Webhooks{client: &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// SendWebhook implements engine.WebhookSender.
func (w *Webhooks) SendWebhook(ctx context.Context, d engine.WebhookDelivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	ts := d.Time.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tasker-webhooks/1")
	req.Header.Set(HeaderEvent, d.Event)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.ID, 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.Secret, ts, d.Body))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// denyPrivate refuses connections to addresses inside the network.
func denyPrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("webhook to %s refused: a private or local address", host)
	}
	return nil
}
