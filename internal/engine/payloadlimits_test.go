package engine_test

import (
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/engine"
)

func TestPayloadLimitsFromEnv(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  map[string]string
		want engine.PayloadLimits
		err  string
	}{
		{"defaults", nil, engine.PayloadLimits{InlineBytes: 200 << 10, MaxBytes: 10 << 20}, ""},
		{"set", map[string]string{engine.EnvPayloadInlineBytes: "4096", engine.EnvPayloadMaxBytes: "1048576"},
			engine.PayloadLimits{InlineBytes: 4096, MaxBytes: 1 << 20}, ""},
		{"inline too large", map[string]string{engine.EnvPayloadInlineBytes: "262144"}, engine.PayloadLimits{},
			`TASKER_PAYLOAD_INLINE_BYTES="262144": want an integer from 1024 to 245760`},
		{"max not a number", map[string]string{engine.EnvPayloadMaxBytes: "10MB"}, engine.PayloadLimits{},
			"TASKER_PAYLOAD_MAX_BYTES"},
		{"max below inline", map[string]string{engine.EnvPayloadInlineBytes: "200000", engine.EnvPayloadMaxBytes: "70000"},
			engine.PayloadLimits{}, "below TASKER_PAYLOAD_INLINE_BYTES"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := engine.PayloadLimitsFromEnv(func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
