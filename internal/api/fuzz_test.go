package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/template"
)

// FuzzDecodeCreate feeds arbitrary bodies (and Idempotency-Key headers) to
// the decoder of POST /v1/tasks. It must never panic; a refusal is a 4xx
// problem with a detail; an accepted request has valid names, fields
// within their limits, and a context that is a JSON object.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []struct{ body, key string }{
		{`{"namespace":"shop","name":"order","version":"1.0.0","context":{"a":1},"initiator":"me","source_system":"web","reason":"r","tags":["a","b"],"idempotency_key":"k1"}`, ""},
		{`{"namespace":"shop","name":"order"}`, "hdr-key"},
		{`{"namespace":"shop","name":"order","idempotency_key":"a"}`, "b"},
		{`{"namespace":"shop","name":"order","context":null,"tags":null}`, ""},
		{`{"namespace":"../../etc","name":"passwd"}`, ""},
		{`{"namespace":"shop","name":"order","context":[1]}`, ""},
		{`{"namespace":"shop","name":"order","context":"x"}`, ""},
		{`{"namespace":"shop","name":"order","name":"x"}`, ""},
		{`{"namespace":"shop","name":"order","bogus":1}`, ""},
		{`{"namespace":"shop","name":"order","tags":["", " ", 1]}`, ""},
		{`{"namespace":"shop","name":"order","idempotency_key":"\u0000"}`, ""},
		{`{"namespace":"sh\u00f6p","name":"order"}`, ""},
		{`{"namespace":"shop","name":"order"} {}`, ""},
		{`{"namespace":"shop","name":"order","context":` + strings.Repeat(`{"a":`, 50) + `1` + strings.Repeat(`}`, 50) + `}`, ""},
		{`[` + strings.Repeat("[", 100), ""},
		{"", ""}, {"null", ""}, {"{}", ""}, {"\xff", ""}, {`{"namespace":1e999}`, ""},
	} {
		f.Add([]byte(s.body), s.key)
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		r := httptest.NewRequest("POST", "/v1/tasks", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header["Idempotency-Key"] = []string{key}
		}
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, DefaultMaxBodyBytes)
		req, err := decodeCreate(r)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("refusal is not a problem: %T %v", err, err)
			}
			if p.Status < 400 || p.Status > 499 || p.Detail == "" || p.Type == "" {
				t.Fatalf("unclear refusal: %+v", p)
			}
			return
		}
		if !template.ValidName(req.Namespace) || !template.ValidName(req.Name) {
			t.Fatalf("accepted names %q/%q", req.Namespace, req.Name)
		}
		for _, f := range []struct {
			v   string
			max int
		}{{req.Version, maxVersionLen}, {req.Initiator, maxShortText}, {req.SourceSystem, maxShortText}, {req.Reason, maxReasonLen}, {req.IdempotencyKey, maxIdemKeyLen}} {
			if utf8.RuneCountInString(f.v) > f.max {
				t.Fatalf("accepted %d characters over a limit of %d", utf8.RuneCountInString(f.v), f.max)
			}
		}
		if req.IdempotencyKey != "" && !domain.Printable(req.IdempotencyKey) {
			t.Fatalf("accepted idempotency key %q", req.IdempotencyKey)
		}
		if len(req.Tags) > maxTags {
			t.Fatalf("accepted %d tags", len(req.Tags))
		}
		for _, tag := range req.Tags {
			if strings.TrimSpace(tag) == "" || utf8.RuneCountInString(tag) > maxTagLen {
				t.Fatalf("accepted tag %q", tag)
			}
		}
		if req.Context != nil {
			var m map[string]any
			if err := json.Unmarshal(req.Context, &m); err != nil || m == nil {
				t.Fatalf("accepted context %q: %v", req.Context, err)
			}
		}
	})
}
