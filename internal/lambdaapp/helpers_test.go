package lambdaapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/testenv"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// recorder is a getenv that records what was asked.
type recorder struct {
	env
	mu   sync.Mutex
	read map[string]bool
}

func (r *recorder) get(k string) string {
	r.mu.Lock()
	if r.read == nil {
		r.read = map[string]bool{}
	}
	r.read[k] = true
	r.mu.Unlock()
	return r.env[k]
}

// logBuffer collects a function's JSON log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records decodes the JSON log lines.
func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const hsSecret = "0123456789abcdef0123456789abcdef-test-secret"

func token(t *testing.T, scope string) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(hsSecret), map[string]any{
		"sub": "tester", "scope": scope, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// orderContext is the shipped example order.
func orderContext(t *testing.T) json.RawMessage {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
