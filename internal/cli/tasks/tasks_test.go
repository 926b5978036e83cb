package tasks

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/wire"
)

// On a terminal the block is redrawn in place: cursor up, clear lines.
func TestProgressRedraw(t *testing.T) {
	var b bytes.Buffer
	task := wire.Task{ID: "t1", Namespace: "n", Name: "w", Version: "1.0.0", Status: "in_progress", Steps: []wire.Step{
		{Name: "a", Status: "complete", Attempts: 1, MaxAttempts: 3},
		{Name: "bb", Status: "waiting_for_retry", Attempts: 1, MaxAttempts: 3, LastError: json.RawMessage(`{"message":"busy","code":"x"}`)},
	}}
	p := &progress{w: &b, tty: true, seen: map[string]string{}, start: time.Now()}
	p.update(task)
	first := b.String()
	p.update(task)
	second := b.String()[len(first):]
	if !strings.Contains(first, "[###############---------------] 1/2 steps") || !strings.Contains(first, "✓ a ") ||
		!strings.Contains(first, "[x] busy") {
		t.Errorf("first frame:\n%s", first)
	}
	if strings.Contains(first, "\x1b[3A") || !strings.HasPrefix(second, "\x1b[?7l\x1b[3A") || !strings.Contains(second, "\x1b[2K") ||
		!strings.HasSuffix(second, "\x1b[?7h") {
		t.Errorf("frames %q / %q", first, second)
	}
}
