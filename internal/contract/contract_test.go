package contract_test

import (
	"encoding/json"
	"testing"

	"github.com/taskerhq/tasker/internal/contract"
)

func TestAsHandlerError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resp      string
		isErr     bool
		code      string
		permanent bool
	}{
		{`{"ok":true}`, false, "", false},
		{`[1,2]`, false, "", false},
		{`"tasker_error"`, false, "", false},
		{`{"tasker_error":null}`, false, "", false},
		{`{"tasker_error":{"message":"declined","permanent":true,"code":"card"}}`, true, "card", true},
		{`{"tasker_error":{"message":"x","permanent":"yes"}}`, true, "malformed_error", false},
		{`{"tasker_error":"boom"}`, true, "malformed_error", false},
		{`{"tasker_error":{}}`, true, "", false},
	}
	for _, tc := range tests {
		he, ok := contract.AsHandlerError(json.RawMessage(tc.resp))
		if ok != tc.isErr {
			t.Fatalf("%s: isErr = %v, want %v", tc.resp, ok, tc.isErr)
		}
		if !ok {
			continue
		}
		if he.Code != tc.code || he.Permanent != tc.permanent || he.Message == "" {
			t.Fatalf("%s: %+v", tc.resp, he)
		}
	}
}
