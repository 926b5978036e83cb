package contract_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/sdk/contract"
)

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70")
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"automatic retries share the key", contract.IdempotencyKey(id, "charge", 0), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge"},
		{"first operator retry", contract.IdempotencyKey(id, "charge", 1), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge/1"},
		{"third operator retry", contract.IdempotencyKey(id, "charge", 3), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge/3"},
		{"negative counts as none", contract.IdempotencyKey(id, "charge", -1), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge"},
		{"map instance", contract.MapIdempotencyKey(id, "resize", 7, 0), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/resize[7]"},
		{"map instance after an operator retry", contract.MapIdempotencyKey(id, "resize", 0, 2), "0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/resize[0]/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Fatalf("key %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestAsHandlerErrorAndAsPending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resp        string
		isErr       bool
		errCode     string
		isPending   bool
		pendingSecs int
	}{
		{resp: `{"ok":true}`},
		{resp: `[1]`},
		{resp: `{"tasker_error":{"message":"boom","permanent":true,"code":"x"}}`, isErr: true, errCode: "x"},
		{resp: `{"tasker_error":"nope"}`, isErr: true, errCode: "malformed_error"},
		{resp: `{"tasker_pending":{}}`, isPending: true, pendingSecs: contract.DefaultPendingTimeoutSeconds},
		{resp: `{"tasker_pending":{"timeout_seconds":60}}`, isPending: true, pendingSecs: 60},
	}
	for _, tt := range tests {
		he, isErr := contract.AsHandlerError(json.RawMessage(tt.resp))
		if isErr != tt.isErr || (isErr && he.Code != tt.errCode) {
			t.Errorf("AsHandlerError(%s) = %+v, %v", tt.resp, he, isErr)
		}
		secs, failure, isPending := contract.AsPending(json.RawMessage(tt.resp))
		if isPending != tt.isPending || failure != nil || secs != tt.pendingSecs {
			t.Errorf("AsPending(%s) = %d, %+v, %v", tt.resp, secs, failure, isPending)
		}
	}
}

func ExampleIdempotencyKey() {
	taskID := uuid.MustParse("0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70")
	fmt.Println(contract.IdempotencyKey(taskID, "charge", 0))       // every automatic retry
	fmt.Println(contract.IdempotencyKey(taskID, "charge", 1))       // after the first operator retry
	fmt.Println(contract.MapIdempotencyKey(taskID, "resize", 4, 0)) // instance 4 of a map step
	// Output:
	// 0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge
	// 0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge/1
	// 0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/resize[4]
}
