package webui_test

// A thin layer over chromedp so browser tests read like a user's steps
// (click, type, wait for) and fail with what they waited for and the page
// they saw, instead of a bare error.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cdpTimeout bounds one action other than waitFor, which has its own.
const cdpTimeout = 30 * time.Second

// browserContext starts headless Chromium (bin) with a fresh profile and
// returns a chromedp context on a new page; the browser ends when the test
// does. The browser starts here, so callers may put timeouts on the
// returned context (a timeout on chromedp's first Run would bound the whole
// browser).
func browserContext(t *testing.T, bin string) context.Context {
	t.Helper()
	// Registered before the cancels below, so its cleanup runs after the
	// browser has exited (cleanups run last-in first-out).
	profile := t.TempDir()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	return ctx
}

type cdp struct {
	t   *testing.T
	ctx context.Context
	// console holds the page's console calls and uncaught exceptions, one
	// line each ("Runtime.consoleAPICalled {"type":...}" or
	// "Runtime.exceptionThrown ..."). Only the test goroutine writes it
	// (each helper call moves in what arrived), so tests read it unlocked.
	console []string

	mu      sync.Mutex
	arrived []string
}

// openCDP starts headless Chromium with a fresh profile, opens url in a
// new page and returns a client attached to it.
func openCDP(t *testing.T, bin, url string) *cdp {
	t.Helper()
	ctx := browserContext(t, bin)
	c := &cdp{t: t, ctx: ctx}
	messages := chromedp.Console(ctx) // subscribes now, before the page loads
	go func() {
		for m, err := range messages {
			if err != nil {
				return // the browser closed at the end of the test
			}
			if m.Source != "" {
				continue // the browser's own log (network, security), not the page's console
			}
			line := "Runtime.exceptionThrown " + m.Text
			if !m.IsException() {
				b, _ := json.Marshal(map[string]any{"type": m.Type, "text": m.Text, "url": m.URL, "line": m.Line})
				line = "Runtime.consoleAPICalled " + string(b)
			}
			c.mu.Lock()
			c.arrived = append(c.arrived, line)
			c.mu.Unlock()
		}
	}()
	c.navigate(url)
	return c
}

// run runs one action with a timeout and moves in console lines.
func (c *cdp) run(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	err := chromedp.Do(ctx, steps...)
	c.mu.Lock()
	c.console = append(c.console, c.arrived...)
	c.arrived = nil
	c.mu.Unlock()
	return err
}

func (c *cdp) navigate(url string) {
	c.t.Helper()
	if err := c.run(cdpTimeout, chromedp.Navigate(url)); err != nil {
		c.t.Fatalf("navigate to %s: %v", url, err)
	}
}

// eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON value into out (left alone if the value is undefined).
func (c *cdp) eval(expr string, out any) {
	c.t.Helper()
	var raw []byte
	err := c.run(cdpTimeout, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		raw, err = chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise)(ctx, t)
		return err
	}))
	if err != nil {
		c.t.Fatalf("eval %s: %v\nconsole: %v", expr, err, c.console)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("eval %s: %v in %s", expr, err, raw)
		}
	}
}

// waitFor polls a boolean expression until it is true; what names it in
// the failure, which shows the page as it was.
func (c *cdp) waitFor(what, expr string, timeout time.Duration) {
	c.t.Helper()
	poll := chromedp.Poll[bool]("Boolean("+expr+")",
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))
	// The page's own timeout ends the poll; the context's is a backstop.
	err := c.run(timeout+cdpTimeout, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := poll(ctx, t)
		return err
	}))
	if err == nil {
		return
	}
	why := err.Error()
	if errors.Is(err, chromedp.ErrPollingTimeout) {
		why = "timed out after " + timeout.String()
	}
	html := "(unavailable)"
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if h, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.getElementById('app')?.outerHTML ?? document.documentElement.outerHTML`)); err == nil {
		html = tail(h, 4000)
	}
	c.t.Fatalf("waiting for %s (%s): %s\npage:\n%s\nconsole: %v", what, expr, why, html, c.console)
}

// click scrolls the element the selector finds into view and clicks the
// centre of it with the mouse, as a user would (hit-testing, focus, then the
// click event). It waits for the element to be visible.
func (c *cdp) click(selector string) {
	c.t.Helper()
	if err := c.run(cdpTimeout, chromedp.Click(chromedp.CSS(selector))); err != nil {
		c.t.Fatalf("click %s: %v", selector, err)
	}
}

// screenshot saves the viewport as PNG at path.
func (c *cdp) screenshot(path string) {
	c.t.Helper()
	var png []byte
	err := c.run(cdpTimeout, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.CaptureScreenshot()(ctx, t)
		return err
	}))
	if err != nil {
		c.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// typeInto clicks the element and types text into it, key by key.
func (c *cdp) typeInto(selector, text string) {
	c.t.Helper()
	sel := chromedp.CSS(selector)
	if err := c.run(cdpTimeout, chromedp.Click(sel), chromedp.SendKeys(sel, text)); err != nil {
		c.t.Fatalf("type into %s: %v", selector, err)
	}
}
