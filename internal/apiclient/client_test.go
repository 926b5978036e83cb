package apiclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/apiclient"
)

func TestNewURL(t *testing.T) {
	for base, want := range map[string]string{
		"127.0.0.1:8080":        "http://127.0.0.1:8080",
		"https://tasker.local/": "https://tasker.local",
	} {
		c, err := apiclient.New(base, "")
		if err != nil || c.BaseURL() != want {
			t.Errorf("New(%q): %v, %v; want %s", base, c, err, want)
		}
	}
	for _, base := range []string{"ftp://h", "http://", "://x"} {
		if _, err := apiclient.New(base, ""); err == nil || !strings.Contains(err.Error(), "is not an http(s) URL") {
			t.Errorf("New(%q): %v", base, err)
		}
	}
}

func TestRequestsAndProblems(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization %q", got)
		}
		switch r.URL.EscapedPath() {
		case "/v1/tasks/t%2F1":
			io.WriteString(w, `{"id":"t/1"}`)
		case "/v1/tasks/t1":
			io.WriteString(w, `{"id":"t1","status":"complete","steps":[{"name":"a","status":"complete"}]}`)
		case "/v1/tasks":
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s Content-Type %q", r.Method, r.Header.Get("Content-Type"))
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"type":"https://tasker.dev/problems/validation","title":"Validation failed","status":422,`+
				`"detail":"the request body is not valid","errors":[{"pointer":"/name","detail":"no workflow"}]}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream down")
		}
	}))
	defer srv.Close()
	c, err := apiclient.New(srv.URL, " tok\n")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	task, raw, err := c.Task(ctx, "t1")
	if err != nil || task.ID != "t1" || len(task.Steps) != 1 || !strings.Contains(string(raw), `"id":"t1"`) {
		t.Errorf("Task: %+v %s %v", task, raw, err)
	}

	if task, _, err := c.Task(ctx, "t/1"); err != nil || task.ID != "t/1" {
		t.Errorf("an id is one path segment: %+v %v", task, err)
	}

	_, _, code, err := c.CreateTask(ctx, map[string]any{"namespace": "x", "name": "y"})
	var ae *apiclient.Error
	if !errors.As(err, &ae) || code != 422 || ae.Problem == nil || ae.Problem.Errors[0].Pointer != "/name" ||
		err.Error() != "Validation failed: the request body is not valid" {
		t.Errorf("CreateTask: code %d, %v (%#v)", code, err, ae)
	}

	_, err = c.TaskGraph(ctx, "other", "json")
	if !errors.As(err, &ae) || ae.Problem != nil || err.Error() != "HTTP 502 Bad Gateway: upstream down" {
		t.Errorf("TaskGraph: %v", err)
	}
}

func TestConnError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there now
	c, err := apiclient.New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Task(context.Background(), "t1")
	var ce *apiclient.ConnError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "cannot reach the Tasker API at "+srv.URL) {
		t.Errorf("err %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Task(ctx, "t1"); !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("cancelled: %v", err)
	}
}
