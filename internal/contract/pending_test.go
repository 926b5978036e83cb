package contract_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
)

func TestAsPending(t *testing.T) {
	t.Parallel()
	cases := []struct {
		resp      string
		pending   bool
		secs      int
		malformed bool
	}{
		{`{"tasker_pending":{"timeout_seconds":600}}`, true, 600, false},
		{`{"tasker_pending":{}}`, true, contract.DefaultPendingTimeoutSeconds, false},
		{`{"tasker_pending":{"timeout_seconds":31536000}}`, true, 31536000, false},
		{`{"tasker_pending":{"timeout_seconds":31536001}}`, true, 0, true},
		{`{"tasker_pending":{"timeout_seconds":-1}}`, true, 0, true},
		{`{"tasker_pending":"soon"}`, true, 0, true},
		{`{"tasker_pending":null}`, false, 0, false},
		{`{"ok":true}`, false, 0, false},
		{`[1]`, false, 0, false},
		{`"tasker_pending"`, false, 0, false},
	}
	for _, tc := range cases {
		secs, herr, ok := contract.AsPending(json.RawMessage(tc.resp))
		if ok != tc.pending || (herr != nil) != tc.malformed || secs != tc.secs {
			t.Errorf("AsPending(%s) = %d, %v, %v", tc.resp, secs, herr, ok)
		}
		if herr != nil && (herr.Code != "malformed_pending" || herr.Permanent) {
			t.Errorf("AsPending(%s): failure %+v, want retryable malformed_pending", tc.resp, herr)
		}
	}
}

func TestWaitWakeRoundTrip(t *testing.T) {
	t.Parallel()
	task, step := uuid.New(), uuid.New()
	m, err := contract.ParseMessage(contract.NewWaitWake(task, step, 3))
	if err != nil {
		t.Fatal(err)
	}
	if m.Wake == nil || m.Wake.TaskID != task || m.Wake.StepID != step || m.Wake.Attempt != 3 {
		t.Fatalf("wake = %+v", m.Wake)
	}
	// A plain wake-up names no step.
	m, err = contract.ParseMessage(contract.NewWake(task))
	if err != nil || m.Wake.StepID != uuid.Nil || string(contract.NewWake(task)) != `{"kind":"wake","task_id":"`+task.String()+`"}` {
		t.Fatalf("plain wake = %+v %v %s", m.Wake, err, contract.NewWake(task))
	}
}
