package webui_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// A map step is one graph node and one steps row with its instances
// counted by state; expanding the row lists its instances a page at a
// time, read from the instances route (one request a page, not one an
// instance), filtered by state on request, each linking to its own step
// view (docs/control-flow.md, "Map").
func TestBrowserMapInstances(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	s := startStack(t, stackOptions{})
	const files = 60 // more than one page of instances (50)
	code, task := s.call(t, "POST", "/v1/tasks", map[string]any{"namespace": "data", "name": "file_batch",
		"context": map[string]any{"bucket": "tasker-data-exports", "prefix": "exports/2026-11-25/", "file_count": files}})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, task)
	}
	id := task["id"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for task["status"] != "complete" {
		if time.Now().After(deadline) {
			t.Fatalf("file batch is %v", task["status"])
		}
		time.Sleep(100 * time.Millisecond)
		_, task = s.call(t, "GET", "/v1/tasks/"+id, nil)
	}

	c := openCDP(t, bin, s.url+"/#/tasks/"+id)
	c.waitFor("the map step's counts", `(document.querySelector('tr[data-step="convert"] .map-note') || {}).textContent === ' map 60/60 complete'`,
		20*time.Second)
	var nodes []string
	c.eval(`[...document.querySelectorAll('g.node')].map((n) => n.dataset.step)`, &nodes)
	if !slices.Contains(nodes, "convert") || slices.ContainsFunc(nodes, func(n string) bool { return strings.Contains(n, "[") }) {
		t.Errorf("graph nodes %v: want convert once, no instances", nodes)
	}
	var detail string
	c.eval(`document.querySelector('g.node[data-step="convert"] text.detail').textContent`, &detail)
	if !strings.Contains(detail, "map 60/60") {
		t.Errorf("graph node detail %q", detail)
	}

	c.click(`tr[data-step="convert"] .map-toggle`)
	c.waitFor("the first page of instances", `document.querySelectorAll('.map-instances tr[data-instance]').length === 50`, 20*time.Second)
	var first struct {
		Name, Status, Attempts, Shown, More, Toggle string
	}
	c.eval(`(() => {
	  const r = document.querySelector('.map-instances tr[data-instance]');
	  return { name: r.dataset.instance, status: r.querySelector('.badge').dataset.status, attempts: r.cells[3].textContent,
	    shown: document.querySelector('.map-shown').textContent, more: document.querySelector('.map-more').textContent,
	    toggle: document.querySelector('tr[data-step="convert"] .map-toggle').getAttribute('aria-expanded') };
	})()`, &first)
	if first.Name != "convert[0]" || first.Status != "complete" || first.Attempts != "1/3" || first.Shown != "50 of 60 instances shown" ||
		first.More != "Show 10 more" || first.Toggle != "true" {
		t.Errorf("first page: %+v", first)
	}
	var reads struct{ Pages, Single int }
	c.eval(`(() => {
	  const urls = performance.getEntriesByType('resource').map((e) => e.name);
	  return { pages: urls.filter((u) => u.includes('/steps/convert/instances')).length,
	    single: urls.filter((u) => u.includes('/steps/convert%5B')).length };
	})()`, &reads)
	if reads.Pages != 1 || reads.Single != 0 {
		t.Errorf("the first page took %d reads of the instances route and %d of single instances; want 1 and 0", reads.Pages, reads.Single)
	}
	c.click(`.map-more`)
	c.waitFor("all instances", `document.querySelectorAll('.map-instances tr[data-instance]').length === 60 && !document.querySelector('.map-more')`,
		20*time.Second)
	var last string
	c.eval(`document.querySelector('.map-instances tr[data-instance="convert[59]"]').cells[0].textContent`, &last)
	if last != "59" {
		t.Errorf("instance 59's index cell %q", last)
	}

	// The state filter lists the states the map has, with their counts,
	// and pages the instances of the one chosen.
	var options []string
	c.eval(`[...document.querySelectorAll('.map-state option')].map((o) => o.textContent)`, &options)
	if strings.Join(options, "|") != "all 60 instances|60 complete" {
		t.Errorf("state filter options %q", options)
	}
	c.eval(`(() => { const s = document.querySelector('.map-state'); s.value = 'complete'; s.dispatchEvent(new Event('change')); return true; })()`, nil)
	c.waitFor("the complete instances", `(document.querySelector('.map-shown') || {}).textContent === '50 of 60 complete instances shown' &&
	  document.querySelectorAll('.map-instances tr[data-instance]').length === 50`, 20*time.Second)
	c.click(`.map-more`)
	c.waitFor("all complete instances", `document.querySelectorAll('.map-instances tr[data-instance]').length === 60`, 20*time.Second)

	// An instance opens its own step view; its name is URL-escaped.
	c.click(`tr[data-instance="convert[59]"] a`)
	c.waitFor("the instance's step card", `document.querySelector('.step-card[data-step="convert[59]"]')`, 10*time.Second)
	var hash string
	c.eval(`location.hash`, &hash)
	if hash != "#/tasks/"+id+"/steps/convert%5B59%5D" {
		t.Errorf("location.hash = %q", hash)
	}

	// Any instance opens by its index, past the listed ones too.
	c.navigate(s.url + "/#/tasks/" + id)
	c.waitFor("the map toggle", `document.querySelector('tr[data-step="convert"] .map-toggle')`, 20*time.Second)
	c.click(`tr[data-step="convert"] .map-toggle`)
	c.waitFor("the open-by-index box", `document.querySelector('.map-open input')`, 20*time.Second)
	c.typeInto(`.map-open input`, "42")
	c.click(`.map-open button`)
	c.waitFor("instance 42", `document.querySelector('.step-card[data-step="convert[42]"]')`, 10*time.Second)
}
