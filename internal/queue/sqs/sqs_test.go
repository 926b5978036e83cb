package sqs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/testenv"
)

func TestDelaySeconds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    time.Duration
		want int32
	}{
		{-time.Second, 0}, {0, 0}, {time.Nanosecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2},
		{899*time.Second + time.Millisecond, 900}, {900 * time.Second, 900}, {20 * time.Minute, 900}, {1 << 62, 900},
	}
	for _, c := range cases {
		if got := sqs.DelaySeconds(c.d); got != c.want {
			t.Errorf("DelaySeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

// fakeSQS speaks the SQS JSON protocol and records what it is sent.
type fakeSQS struct {
	t *testing.T
	// decide returns how a batch entry with this body fails on its n-th
	// attempt (1-based): "" (success), "server", "sender" or "silent"
	// (listed neither as successful nor failed).
	decide func(body string, attempt int) string

	mu       sync.Mutex
	calls    []fakeCall
	attempts map[string]int
}

type fakeCall struct {
	Action string
	Input  map[string]any
}

type fakeEntry struct {
	ID                      string                       `json:"Id"`
	MessageBody             string                       `json:"MessageBody"`
	DelaySeconds            int                          `json:"DelaySeconds"`
	MessageAttributes       map[string]map[string]string `json:"MessageAttributes"`
	MessageSystemAttributes map[string]map[string]string `json:"MessageSystemAttributes"`
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		f.t.Errorf("fake SQS: decode %s: %v", action, err)
	}
	var in map[string]any
	_ = json.Unmarshal(raw, &in)
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Action: action, Input: in})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	switch action {
	case "SendMessage":
		_ = json.NewEncoder(w).Encode(map[string]string{"MessageId": "m-1"})
	case "SendMessageBatch":
		var req struct{ Entries []fakeEntry }
		_ = json.Unmarshal(raw, &req)
		ok, failed := []map[string]any{}, []map[string]any{}
		for _, e := range req.Entries {
			f.mu.Lock()
			if f.attempts == nil {
				f.attempts = map[string]int{}
			}
			f.attempts[e.MessageBody]++
			n := f.attempts[e.MessageBody]
			f.mu.Unlock()
			how := ""
			if f.decide != nil {
				how = f.decide(e.MessageBody, n)
			}
			switch how {
			case "":
				ok = append(ok, map[string]any{"Id": e.ID, "MessageId": "m-" + e.ID, "MD5OfMessageBody": "x"})
			case "server":
				failed = append(failed, map[string]any{"Id": e.ID, "Code": "InternalError", "Message": "boom", "SenderFault": false})
			case "sender":
				failed = append(failed, map[string]any{"Id": e.ID, "Code": "InvalidParameterValue", "Message": "bad", "SenderFault": true})
			case "silent":
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Successful": ok, "Failed": failed})
	default:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#UnsupportedOperation","message":"fake: %s"}`, action)
	}
}

func (f *fakeSQS) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func (f *fakeSQS) Attempts(body string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[body]
}

func newFake(t *testing.T, decide func(string, int) string, opts ...sqs.Option) (*sqs.Queue, *fakeSQS) {
	t.Helper()
	f := &fakeSQS{t: t, decide: decide}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := awssqs.NewFromConfig(testenv.AWSConfig(srv.URL), func(o *awssqs.Options) {
		o.DisableMessageChecksumValidation = true
		o.RetryMaxAttempts = 1
	})
	return sqs.New(client, srv.URL+"/000000000000/q", opts...), f
}

func entriesOf(t *testing.T, c fakeCall) []fakeEntry {
	t.Helper()
	b, _ := json.Marshal(c.Input["Entries"])
	var es []fakeEntry
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatal(err)
	}
	return es
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSendOneUsesSendMessage(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, nil)
	err := q.Send(ctx(t), []engine.Message{{
		Body:  []byte(`{"kind":"wake"}`),
		Delay: 1500 * time.Millisecond,
		Attributes: map[string]string{
			"traceparent":            "00-abc-def-01",
			sqs.TraceHeaderAttribute: "Root=1-abc;Parent=def;Sampled=1",
			"empty":                  "",
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Action != "SendMessage" {
		t.Fatalf("calls = %+v, want one SendMessage", calls)
	}
	b, _ := json.Marshal(calls[0].Input)
	var in fakeEntry
	_ = json.Unmarshal(b, &in)
	if in.MessageBody != `{"kind":"wake"}` || in.DelaySeconds != 2 {
		t.Errorf("body %q delay %d", in.MessageBody, in.DelaySeconds)
	}
	if calls[0].Input["QueueUrl"] != q.URL() {
		t.Errorf("QueueUrl = %v", calls[0].Input["QueueUrl"])
	}
	wantAttrs := map[string]map[string]string{"traceparent": {"DataType": "String", "StringValue": "00-abc-def-01"}}
	if fmt.Sprint(in.MessageAttributes) != fmt.Sprint(wantAttrs) {
		t.Errorf("MessageAttributes = %v, want %v (AWSTraceHeader and empty values excluded)", in.MessageAttributes, wantAttrs)
	}
	wantSys := map[string]map[string]string{"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc;Parent=def;Sampled=1"}}
	if fmt.Sprint(in.MessageSystemAttributes) != fmt.Sprint(wantSys) {
		t.Errorf("MessageSystemAttributes = %v, want %v", in.MessageSystemAttributes, wantSys)
	}
}

func TestSendBatchesOfTen(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, nil)
	msgs := make([]engine.Message, 25)
	for i := range msgs {
		msgs[i] = engine.Message{Body: fmt.Appendf(nil, `{"n":%d}`, i), Delay: time.Duration(i) * time.Minute}
	}
	if err := q.Send(ctx(t), msgs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var sizes []int
	for _, c := range f.Calls() {
		if c.Action != "SendMessageBatch" {
			t.Fatalf("unexpected %s", c.Action)
		}
		es := entriesOf(t, c)
		sizes = append(sizes, len(es))
		for _, e := range es {
			var n int
			fmt.Sscanf(e.MessageBody, `{"n":%d}`, &n)
			if want := int(sqs.DelaySeconds(time.Duration(n) * time.Minute)); e.DelaySeconds != want {
				t.Errorf("entry %s: DelaySeconds %d, want %d", e.MessageBody, e.DelaySeconds, want)
			}
			seen[e.MessageBody]++
		}
	}
	if len(sizes) != 3 || sizes[0]+sizes[1]+sizes[2] != 25 || max(sizes[0], sizes[1], sizes[2]) != 10 {
		t.Errorf("batch sizes %v, want 10, 10 and 5", sizes)
	}
	if len(seen) != 25 {
		t.Errorf("%d distinct messages sent, want 25", len(seen))
	}
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", b, n)
		}
	}
}

func TestSendBatchesRespectBytes(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, nil, sqs.WithMaxBatchBytes(100))
	body := strings.Repeat("x", 38)
	msgs := make([]engine.Message, 5)
	for i := range msgs {
		msgs[i] = engine.Message{Body: fmt.Appendf(nil, `"%d%s"`, i, body)} // 41 bytes each
	}
	if err := q.Send(ctx(t), msgs); err != nil {
		t.Fatal(err)
	}
	var batches, singles int
	for _, c := range f.Calls() {
		switch c.Action {
		case "SendMessageBatch":
			batches++
			if n := len(entriesOf(t, c)); n != 2 {
				t.Errorf("batch of %d, want 2 (82 of 100 bytes)", n)
			}
		case "SendMessage":
			singles++
		}
	}
	if batches != 2 || singles != 1 {
		t.Errorf("%d batches and %d single sends, want 2 and 1", batches, singles)
	}
}

func TestSendRetriesFailedEntriesOnce(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, func(body string, attempt int) string {
		switch {
		case body == `"flaky"` && attempt == 1:
			return "server"
		case body == `"silent"` && attempt == 1:
			return "silent"
		}
		return ""
	})
	err := q.Send(ctx(t), []engine.Message{{Body: []byte(`"ok"`)}, {Body: []byte(`"flaky"`)}, {Body: []byte(`"silent"`)}})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	for body, want := range map[string]int{`"ok"`: 1, `"flaky"`: 2, `"silent"`: 2} {
		if got := f.Attempts(body); got != want {
			t.Errorf("%s sent %d times, want %d", body, got, want)
		}
	}
}

func TestSendReportsEntriesThatStillFail(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, func(body string, attempt int) string {
		switch body {
		case `"down"`:
			return "server"
		case `"invalid"`:
			return "sender"
		}
		return ""
	})
	err := q.Send(ctx(t), []engine.Message{{Body: []byte(`"ok"`)}, {Body: []byte(`"down"`)}, {Body: []byte(`"invalid"`)}})
	if err == nil {
		t.Fatal("Send succeeded with failing entries")
	}
	for _, want := range []string{"2 of 3 messages failed", "message 1: InternalError: boom", q.URL()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got := f.Attempts(`"down"`); got != 2 {
		t.Errorf("server fault: %d attempts, want 2", got)
	}
	if got := f.Attempts(`"invalid"`); got != 1 {
		t.Errorf("sender fault: %d attempts, want 1 (retrying cannot help)", got)
	}
}

func TestSendRefusesBadMessagesWithoutCalling(t *testing.T) {
	t.Parallel()
	q, f := newFake(t, nil)
	attrs := map[string]string{sqs.TraceHeaderAttribute: "Root=1-a"}
	for i := range 11 {
		attrs[fmt.Sprint("a", i)] = "v"
	}
	err := q.Send(ctx(t), []engine.Message{{Body: []byte(`"x"`)}, {Body: []byte(`"y"`), Attributes: attrs}})
	if err == nil || !strings.Contains(err.Error(), "message 1 has 11 attributes") {
		t.Errorf("11 attributes: %v", err)
	}
	if err := q.Send(ctx(t), []engine.Message{{Body: nil}}); err == nil || !strings.Contains(err.Error(), "empty body") {
		t.Errorf("empty body: %v", err)
	}
	if err := q.Send(ctx(t), nil); err != nil {
		t.Errorf("Send(nil): %v", err)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("%d calls made, want none", len(calls))
	}
}
