package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// waitTaskStatus polls the API until task id is in status want.
func (s *stack) waitTaskStatus(t *testing.T, id, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, task := s.call(t, "GET", "/v1/tasks/"+id, nil)
		if task["status"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %v, want %s", id, task["status"], want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bulk actions driven in Chromium (DevTools protocol): select two rows of
// the failed tasks and cancel them; then "select all matching" and retry
// the rest with a reason, after the dry-run count; the task page shows the
// whole audit as a timeline.
func TestBrowserBulkAndTimeline(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	var ids []string
	for range 3 {
		code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "payments", "name": "process_refund",
			"context": map[string]any{"payment_id": "pay_1", "refund_amount": 5000, "original_amount": 100, "customer_email": "ada@example.com"}})
		if code != http.StatusCreated {
			t.Fatalf("create: %d %v", code, task)
		}
		ids = append(ids, task["id"].(string))
	}
	for _, id := range ids {
		s.waitTaskStatus(t, id, "error")
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	sel := func(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(`input[data-select="%s"]`, id)) }
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// waitText polls until the bulk result says word, and returns it.
	waitText := func(word string) (string, error) {
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
			`(document.getElementById('bulk-result')||{textContent:''}).textContent.includes('`+word+`')`)); err != nil {
			return "", err
		}
		return chromedp.Run(ctx, chromedp.Text(css(`#bulk-result`)))
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/#/tasks?status=error"),
		chromedp.WaitVisible(sel(ids[0])), chromedp.WaitVisible(sel(ids[1])), chromedp.WaitVisible(sel(ids[2])),
		chromedp.Click(sel(ids[0])), chromedp.Click(sel(ids[1])),
		chromedp.WaitVisible(css(`.bulk-what[data-selected="2"]`)),
		chromedp.Click(css(`button[data-bulk="cancel"]`)),
		chromedp.WaitVisible(css(`#bulk-confirm[data-action="cancel"][data-count="2"]`)),
		chromedp.Click(css(`button[data-bulk="confirm"]`)),
	)
	var result string
	if err == nil {
		result, err = waitText("cancelled")
	}
	if err != nil {
		t.Fatalf("select and cancel: %v", err)
	}
	if !strings.Contains(result, "2 tasks cancelled, 0 skipped") {
		t.Errorf("result = %q", result)
	}
	for _, id := range ids[:2] {
		s.waitTaskStatus(t, id, "cancelled")
	}
	s.waitTaskStatus(t, ids[2], "error")

	// All matching (status=error): the dry run counts 1; retry it with a reason.
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/#/tasks?status=error&name=process_refund"),
		chromedp.WaitVisible(sel(ids[2])),
		chromedp.Click(css(`button[data-bulk="all"]`)),
		chromedp.WaitVisible(css(`.bulk-what[data-selected="all"]`)),
		chromedp.Click(css(`button[data-bulk="retry"]`)),
		chromedp.WaitVisible(css(`#bulk-confirm[data-action="retry"][data-count="1"]`)),
		chromedp.SendKeys(css(`#bulk-confirm input[name="reason"]`), "from the browser"),
		chromedp.Click(css(`button[data-bulk="confirm"]`)),
	)
	if err == nil {
		result, err = waitText("retried")
	}
	if err != nil {
		t.Fatalf("select all matching and retry: %v", err)
	}
	if !strings.Contains(result, "1 tasks retried, 0 skipped") {
		t.Errorf("result = %q", result)
	}
	// It fails again, permanently; its audit records the operator's retry.
	s.waitTaskStatus(t, ids[2], "error")
	_, page := s.call(t, "GET", "/v1/tasks/"+ids[2]+"/transitions?limit=1000", nil)
	var retried bool
	trs, _ := page["transitions"].([]any)
	for _, tr := range trs {
		m := tr.(map[string]any)
		retried = retried || (m["reason"] == "from the browser" && m["to"] == "in_progress" && m["step"] == nil)
	}
	if !retried {
		t.Errorf("no task transition with the browser's reason: %v", trs)
	}

	// The timeline of a cancelled task: every transition, the last one the
	// task's cancellation.
	_, page = s.call(t, "GET", "/v1/tasks/"+ids[0]+"/transitions?limit=1000", nil)
	want := len(page["transitions"].([]any))
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/#/tasks/"+ids[0]),
		chromedp.WaitVisible(css(`ol.timeline li[data-step=""][data-to="cancelled"]`)),
	)
	var n int
	var last, stepRows string
	if err == nil {
		n, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('ol.timeline li').length`))
	}
	if err == nil {
		last, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('ol.timeline li:last-child').dataset.to`))
	}
	if err == nil {
		stepRows, err = chromedp.Run(ctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll('ol.timeline li')].filter(li => li.dataset.step).map(li => li.dataset.step).join(',')`))
	}
	if err != nil {
		t.Fatalf("timeline: %v", err)
	}
	if n != want || last != "cancelled" || !strings.Contains(stepRows, "validate_refund") {
		t.Errorf("timeline: %d rows (API: %d), last %q, step rows %q", n, want, last, stepRows)
	}
}
