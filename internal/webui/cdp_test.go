package webui_test

// A minimal Chrome DevTools Protocol client over --remote-debugging-pipe
// (fd 3: commands to the browser, fd 4: replies and events, each message
// NUL-terminated JSON), so browser tests can click and type like a user
// without a WebSocket library or a driver binary.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

type cdp struct {
	t       *testing.T
	in      *os.File // we write
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan cdpReply
	session string
	console []string
}

// openCDP starts headless Chromium with a fresh profile, opens url in a
// new page and returns a client attached to it.
func openCDP(t *testing.T, bin, url string) *cdp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	toBrowserR, toBrowserW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromBrowserR, fromBrowserW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The profile is removed after the browser and its helper processes
	// have exited (t.TempDir's cleanup would race them).
	profile, err := os.MkdirTemp("", "tasker-cdp-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--window-size=1280,900", "--user-data-dir="+profile, "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowserR, fromBrowserW} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) } // the whole group
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	toBrowserR.Close()
	fromBrowserW.Close()
	c := &cdp{t: t, in: toBrowserW, waiting: map[int]chan cdpReply{}}
	done := make(chan struct{})
	go c.read(fromBrowserR, done)
	t.Cleanup(func() {
		// Ask the browser to quit, give it a moment, then end its group.
		_, _ = toBrowserW.Write([]byte(`{"id":999999,"method":"Browser.close","params":{}}` + "\x00"))
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		cancel()
		<-exited
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind, if any
		toBrowserW.Close()
		<-done
		for i := 0; i < 20; i++ {
			if err := os.RemoveAll(profile); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	c.session = attached.SessionID
	c.do("Runtime.enable", nil)
	c.do("Page.enable", nil)
	c.navigate(url)
	return c
}

// read routes replies to their callers and keeps console messages.
func (c *cdp) read(r *os.File, done chan struct{}) {
	defer close(done)
	br := bufio.NewReader(r)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.waiting {
				close(ch)
				delete(c.waiting, id)
			}
			c.mu.Unlock()
			return
		}
		var m struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch, ok := c.waiting[m.ID]; ok {
				ch <- m.cdpReply
				delete(c.waiting, m.ID)
			}
		} else if m.Method == "Runtime.consoleAPICalled" || m.Method == "Runtime.exceptionThrown" {
			c.console = append(c.console, m.Method+" "+string(m.Params))
		}
		c.mu.Unlock()
	}
}

// call sends a command (to the page's session unless session is "" for
// the browser) and decodes its result into out.
func (c *cdp) call(session, method string, params any, out any) {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpReply, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.in.Write(append(b, 0)); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			c.t.Fatalf("cdp %s: the browser went away", method)
		}
		if rep.Error != nil {
			c.t.Fatalf("cdp %s: %s", method, rep.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(rep.Result, out); err != nil {
				c.t.Fatalf("cdp %s: %v in %s", method, err, rep.Result)
			}
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("cdp %s: no reply", method)
	}
}

func (c *cdp) do(method string, params any) { c.t.Helper(); c.call(c.session, method, params, nil) }

func (c *cdp) navigate(url string) {
	c.t.Helper()
	c.do("Page.navigate", map[string]any{"url": url})
}

// eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON value into out.
func (c *cdp) eval(expr string, out any) {
	c.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	c.call(c.session, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		c.t.Fatalf("eval %s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		if err := json.Unmarshal(r.Result.Value, out); err != nil {
			c.t.Fatalf("eval %s: %v in %s", expr, err, r.Result.Value)
		}
	}
}

// waitFor polls a boolean expression until it is true.
func (c *cdp) waitFor(what, expr string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		c.eval("Boolean("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var html string
			c.eval("document.getElementById('app')?.outerHTML ?? document.documentElement.outerHTML", &html)
			c.t.Fatalf("waited %s for %s (%s)\npage:\n%s\nconsole: %v", timeout, what, expr, tail(html, 4000), c.console)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click presses and releases the left mouse button on the centre of the
// element the selector finds, as a user's click would (hit-testing,
// focus, then the click event).
func (c *cdp) click(selector string) {
	c.t.Helper()
	var box struct{ X, Y float64 }
	c.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.scrollIntoView({block: 'center'});
		const r = el.getBoundingClientRect(); return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`, selector), &box)
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p := map[string]any{"type": typ, "x": box.X, "y": box.Y}
		if typ != "mouseMoved" {
			p["button"], p["clickCount"] = "left", 1
		}
		c.do("Input.dispatchMouseEvent", p)
	}
}

// screenshot saves the page as PNG at path.
func (c *cdp) screenshot(path string) {
	c.t.Helper()
	var r struct {
		Data []byte `json:"data"` // base64 in JSON: encoding/json decodes it
	}
	c.call(c.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	if err := os.WriteFile(path, r.Data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// typeInto focuses the element and types text into it.
func (c *cdp) typeInto(selector, text string) {
	c.t.Helper()
	c.click(selector)
	c.do("Input.insertText", map[string]any{"text": text})
}
