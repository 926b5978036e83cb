package contract_test

import (
	"encoding/json"
	"strings"
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

func TestAsRef(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		in      string
		isRef   bool
		wantErr bool
	}{
		{`{"tasker_ref":{"uri":"pg:tasks/a/context","size":3,"sha256":"` + sum + `"}}`, true, false},
		{` {"tasker_ref":{"uri":"s3://b/k","size":0,"sha256":"` + sum + `","url":"https://x"}} `, true, false},
		{`{"tasker_ref":{"uri":"","size":3,"sha256":"` + sum + `"}}`, true, true},
		{`{"tasker_ref":{"uri":"pg:k","size":3,"sha256":"short"}}`, true, true},
		{`{"tasker_ref":"pg:k"}`, true, true},
		{`{"tasker_ref":{"uri":"pg:k"},"other":1}`, false, false}, // data that happens to have the name
		{`{"data":"tasker_ref"}`, false, false},
		{`[1,2]`, false, false},
		{`null`, false, false},
	} {
		ref, isRef, err := contract.AsRef(json.RawMessage(tt.in))
		if isRef != tt.isRef || (err != nil) != tt.wantErr || (isRef && !tt.wantErr && ref == nil) {
			t.Errorf("AsRef(%s) = %+v, %v, %v; want isRef %v, error %v", tt.in, ref, isRef, err, tt.isRef, tt.wantErr)
		}
	}
}
