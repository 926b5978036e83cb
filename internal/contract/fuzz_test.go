package contract_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
)

const seedRecord = `{"version":"1.0","timestamp":"2026-01-01T00:00:00Z","requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:1:function:h","condition":"Success","approximateInvokeCount":1},` +
	`"requestPayload":{"tasker":{"version":1,"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","step_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c","step":"s","attempt":2},"context":{}},` +
	`"responseContext":{"statusCode":200,"executedVersion":"$LATEST"},"responsePayload":{"ok":true}}`

func addMessageSeeds(f *testing.F) {
	f.Add([]byte(seedRecord))
	f.Add(contract.NewWake(uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")))
	for _, s := range []string{
		strings.Replace(seedRecord, `{"ok":true}`, `{"tasker_error":{"message":"","permanent":true,"retry_after_seconds":-5}}`, 1),
		strings.Replace(seedRecord, `{"ok":true}`, `{"tasker_error":"not an object"}`, 1),
		strings.Replace(seedRecord, `"Success"`, `"RetriesExhausted"`, 1),
		strings.Replace(seedRecord, `"Success"`, `"EventAgeExceeded"`, 1),
		strings.Replace(seedRecord, `"attempt":2`, `"attempt":-1`, 1),
		strings.Replace(seedRecord, `,"responsePayload":{"ok":true}`, ``, 1),
		strings.Replace(seedRecord, `"executedVersion":"$LATEST"`, `"executedVersion":"$LATEST","functionError":"Unhandled"`, 1),
		// Results and errors PostgreSQL cannot store still parse: the engine
		// fails their step, not their message.
		strings.Replace(seedRecord, `{"ok":true}`, `{"a":"x\u0000y","\ud800":1e200000}`, 1),
		strings.Replace(seedRecord, `{"ok":true}`, `{"tasker_error":{"message":"nul\u0000 \udc00","code":"\u0000"}}`, 1),
		strings.Replace(seedRecord, `{"ok":true}`, "\"\xff\xfe\"", 1),
		`{"kind":"wake","task_id":"00000000-0000-0000-0000-000000000000"}`,
		`{"kind":"explode"}`, `{"kind":1}`, `{"requestContext":null}`, `{"requestContext":{}}`, `null`, `[]`, `"wake"`, ``, `not json`,
		`{"kind":"wake","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","requestContext":{}}`,
		`{"kind":"wake","kind":"x","task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseMessage: any scheduler queue body is either refused as
// malformed (never a panic, always ErrMalformed) or decoded into exactly one
// well-formed wake-up or step result.
func FuzzParseMessage(f *testing.F) {
	addMessageSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := contract.ParseMessage(body)
		if err != nil {
			if !errors.Is(err, contract.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if m.Wake != nil || m.Result != nil {
				t.Fatal("a message and an error")
			}
			return
		}
		switch {
		case m.Wake != nil && m.Result == nil:
			if m.Wake.TaskID == uuid.Nil || m.Wake.Kind != contract.KindWake {
				t.Fatalf("wake %+v", m.Wake)
			}
			if again, err := contract.ParseMessage(contract.NewWake(m.Wake.TaskID)); err != nil || again.Wake.TaskID != m.Wake.TaskID {
				t.Fatalf("wake does not round-trip: %v", err)
			}
		case m.Result != nil && m.Wake == nil:
			checkResult(t, *m.Result)
		default:
			t.Fatalf("not exactly one of wake and result: %+v", m)
		}
	})
}

// FuzzParseDestinationRecord: a destination record is refused as
// malformed or gives a result naming a task, step and attempt, with
// either a JSON output or an error message.
func FuzzParseDestinationRecord(f *testing.F) {
	addMessageSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := contract.ParseDestinationRecord(body)
		if err != nil {
			if !errors.Is(err, contract.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		checkResult(t, r)
	})
}

func checkResult(t *testing.T, r contract.Result) {
	t.Helper()
	if r.TaskID == uuid.Nil || r.StepID == uuid.Nil || r.Attempt < 1 {
		t.Fatalf("result without identity: %+v", r)
	}
	if r.Err == nil {
		if !json.Valid(r.Output) {
			t.Fatalf("output is not JSON: %q", r.Output)
		}
		if he, ok := contract.AsHandlerError(r.Output); ok {
			t.Fatalf("an error envelope recorded as output: %+v", he)
		}
		return
	}
	if strings.TrimSpace(r.Err.Message) == "" {
		t.Fatalf("error without a message: %+v", r.Err)
	}
	if r.Output != nil {
		t.Fatalf("both an error and an output")
	}
}
