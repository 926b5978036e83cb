// Package trigger starts workflows from S3 and EventBridge events (DESIGN
// §1, §7): the trigger Lambda hands each event to a Handler, which matches
// it against the triggers of every workflow and creates a task for each
// match through the same path as the API.
//
// # Events
//
//   - S3 notifications sent straight to Lambda ({"Records":[{"eventSource":
//     "aws:s3", "eventName":"ObjectCreated:…", "s3":{…}}]}); object keys
//     arrive URL-encoded (form encoding) and are decoded. Records other
//     than ObjectCreated ones are ignored.
//   - EventBridge events ({"source", "detail-type", "detail", "id", …}).
//     S3's own "Object Created" events (source aws.s3) are matched against
//     s3 triggers (bucket name, object key as delivered) and, like every
//     EventBridge event, against eventbridge triggers.
//
// Anything else (S3's s3:TestEvent, other services' records) matches
// nothing.
//
// # Matching
//
// Only the version of a workflow that a request without a version would get
// (template.Set.Get with an empty version) is considered, and one event
// starts at most one task per workflow per object: the workflow's first
// matching trigger wins. An s3 trigger matches an object-created event whose
// bucket equals Bucket and whose key starts with Prefix and ends with
// Suffix. An eventbridge trigger matches when the event's source is one of
// Source and its detail-type one of DetailType (an empty list matches
// anything) and Detail, an EventBridge pattern, matches the event's detail
// (see matchPattern for the operators supported).
//
// # Context
//
// A trigger's Context maps context fields to paths into a view of the
// event: "$" is the view, ".name", "['name']" and "[n]" step into it. For
// S3 events the view has bucket, key, size, etag, version_id, sequencer,
// region, time, and event_name (direct notifications; "record" holds the
// raw record) or reason (EventBridge; every field of the EventBridge event,
// detail included, is there too). For other EventBridge events the view is
// the event itself: $.id, $.source, $.detail.order_id, … A path that finds
// nothing leaves its field out (the context_schema decides whether that is
// acceptable). Without a Context mapping the context is the S3 fields
// above, or the event's detail.
//
// # Idempotency
//
// Every task started by an event gets an idempotency key derived from the
// event, so a redelivered event never starts a second task:
// "s3:<bucket>/<key>/<sequencer>" (the version id or ETag stand in for a
// missing sequencer) and "eventbridge:<id>", each suffixed with
// "#<namespace>/<name>" of the workflow, since one event may start several
// workflows and keys are unique across workflows. A key longer than 255
// characters is replaced by "<kind>:sha256:<hex digest of the key>". The
// keys live in their own scope (engine.TriggerScope), so no API caller can
// claim or replay them; a redelivery that maps to a different request
// (the trigger or template changed) is refused and the event dropped for
// that workflow.
package trigger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
)

// Source systems recorded on the tasks triggers start.
const (
	SourceS3          = template.TriggerS3
	SourceEventBridge = template.TriggerEventBridge
)

// Initiator and Actor recorded on tasks started by triggers.
const Initiator = "trigger"

// MaxIdempotencyKeyLen is the longest idempotency key used as is (the
// API's limit); longer keys are hashed.
const MaxIdempotencyKeyLen = 255

// Result is what an event matched.
type Result struct {
	// Kind is SourceS3 for S3 notifications, SourceEventBridge for
	// EventBridge events (S3's included) and "" for anything else.
	Kind string
	// Requests holds one task to create per matched workflow (and object).
	Requests []engine.CreateRequest
	// Rejected lists workflows whose trigger matched but whose context
	// mapping is broken.
	Rejected []Rejection
}

// Rejection is a matched workflow for which no task can be created.
type Rejection struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Error     string `json:"error"`
}

// Match matches an event against the triggers of set; see the package doc.
// It fails only when the event is not a JSON object.
func Match(set *template.Set, event json.RawMessage) (Result, error) {
	root, err := decode(event)
	if err != nil {
		return Result{}, err
	}
	kind, occs := occurrences(root)
	res := Result{Kind: kind}
	if len(occs) == 0 {
		return res, nil
	}
	tpls := current(set)
	for _, occ := range occs {
		for _, tpl := range tpls {
			for _, tr := range tpl.Triggers {
				req, ok, err := occ.match(tpl, tr)
				if !ok {
					continue
				}
				if err != nil {
					res.Rejected = append(res.Rejected, Rejection{
						Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Error: err.Error(),
					})
				} else {
					res.Requests = append(res.Requests, req)
				}
				break // the first matching trigger of a workflow wins
			}
		}
	}
	return res, nil
}

func decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers reach the context exactly as sent
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("trigger: event is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trigger: event has data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("trigger: event is not a JSON object")
	}
	return obj, nil
}

// current returns the version of every workflow that a request without a
// version gets.
func current(set *template.Set) []*template.Template {
	var out []*template.Template
	seen := map[string]bool{}
	for _, t := range set.List() {
		k := t.Namespace + "/" + t.Name
		if seen[k] {
			continue
		}
		seen[k] = true
		if cur, err := set.Get(t.Namespace, t.Name, ""); err == nil && len(cur.Triggers) > 0 {
			out = append(out, cur)
		}
	}
	return out
}

// occurrence is one thing that happened: an S3 object created, an
// EventBridge event, or both (S3's EventBridge events).
type occurrence struct {
	s3 *s3Object
	eb map[string]any // the EventBridge event, when it came through EventBridge
}

type s3Object struct {
	bucket, key string
	identity    string // sequencer, or version id / ETag without one
	view        map[string]any
	defaults    map[string]any // the context without a mapping
}

func occurrences(root map[string]any) (kind string, occs []occurrence) {
	if recs, ok := root["Records"].([]any); ok {
		for _, r := range recs {
			rec, ok := r.(map[string]any)
			if !ok || str(rec, "eventSource") != "aws:s3" {
				continue
			}
			kind = SourceS3
			if !strings.HasPrefix(str(rec, "eventName"), "ObjectCreated:") {
				continue
			}
			if o := fromNotification(rec); o != nil {
				occs = append(occs, occurrence{s3: o})
			}
		}
		return kind, occs
	}
	if _, ok := root["detail-type"].(string); !ok {
		return "", nil
	}
	if _, ok := root["source"].(string); !ok {
		return "", nil
	}
	occ := occurrence{eb: root}
	if str(root, "source") == "aws.s3" && str(root, "detail-type") == "Object Created" {
		occ.s3 = fromEventBridge(root)
	}
	return SourceEventBridge, []occurrence{occ}
}

// fromNotification reads the object of an S3 notification record.
func fromNotification(rec map[string]any) *s3Object {
	s3, _ := rec["s3"].(map[string]any)
	bucket, _ := s3["bucket"].(map[string]any)
	obj, _ := s3["object"].(map[string]any)
	name := str(bucket, "name")
	rawKey := str(obj, "key")
	if name == "" || rawKey == "" {
		return nil
	}
	key, err := url.QueryUnescape(rawKey)
	if err != nil {
		key = rawKey // not validly encoded: take it as it is
	}
	o := &s3Object{bucket: name, key: key}
	fields := map[string]any{
		"bucket": name, "key": key, "size": obj["size"], "etag": obj["eTag"], "version_id": obj["versionId"],
		"sequencer": obj["sequencer"], "region": rec["awsRegion"], "time": rec["eventTime"],
	}
	o.finish(fields, obj)
	o.view["event_name"] = rec["eventName"]
	o.view["record"] = rec
	return o
}

// fromEventBridge reads the object of S3's EventBridge "Object Created".
func fromEventBridge(ev map[string]any) *s3Object {
	detail, _ := ev["detail"].(map[string]any)
	bucket, _ := detail["bucket"].(map[string]any)
	obj, _ := detail["object"].(map[string]any)
	name, key := str(bucket, "name"), str(obj, "key")
	if name == "" || key == "" {
		return nil
	}
	o := &s3Object{bucket: name, key: key}
	fields := map[string]any{
		"bucket": name, "key": key, "size": obj["size"], "etag": obj["etag"], "version_id": obj["version-id"],
		"sequencer": obj["sequencer"], "region": ev["region"], "time": ev["time"],
	}
	o.finish(fields, obj)
	for k, v := range ev {
		if _, taken := o.view[k]; !taken {
			o.view[k] = v
		}
	}
	o.view["reason"] = detail["reason"]
	return o
}

// finish fills the view, the default context and the identity.
func (o *s3Object) finish(fields, obj map[string]any) {
	o.view = map[string]any{}
	o.defaults = map[string]any{}
	for k, v := range fields {
		if v == nil || v == "" {
			continue
		}
		o.view[k] = v
		o.defaults[k] = v
	}
	o.identity = firstNonEmpty(str(obj, "sequencer"), str(obj, "versionId"), str(obj, "version-id"), str(obj, "eTag"), str(obj, "etag"))
}

// match reports whether tr of tpl matches the occurrence (ok) and, if so,
// the request to create or why none can be.
func (occ occurrence) match(tpl *template.Template, tr template.Trigger) (engine.CreateRequest, bool, error) {
	var (
		view     any
		defaults map[string]any
		key      string
		reason   string
	)
	switch tr.Type {
	case template.TriggerS3:
		o := occ.s3
		if o == nil || o.bucket != tr.Bucket || !strings.HasPrefix(o.key, tr.Prefix) || !strings.HasSuffix(o.key, tr.Suffix) {
			return engine.CreateRequest{}, false, nil
		}
		view, defaults = o.view, o.defaults
		if o.identity != "" {
			key = "s3:" + o.bucket + "/" + o.key + "/" + o.identity
		}
		reason = "S3 object created: s3://" + o.bucket + "/" + o.key
	case template.TriggerEventBridge:
		ev := occ.eb
		if ev == nil || !oneOf(tr.Source, str(ev, "source")) || !oneOf(tr.DetailType, str(ev, "detail-type")) {
			return engine.CreateRequest{}, false, nil
		}
		if len(tr.Detail) > 0 && !matchPattern(tr.Detail, ev["detail"]) {
			return engine.CreateRequest{}, false, nil
		}
		view = ev
		defaults, _ = ev["detail"].(map[string]any)
		if id := str(ev, "id"); id != "" {
			key = "eventbridge:" + id
		}
		reason = fmt.Sprintf("EventBridge event %s: %s from %s", str(ev, "id"), str(ev, "detail-type"), str(ev, "source"))
	default:
		return engine.CreateRequest{}, false, nil
	}
	ctx, err := buildContext(tr.Context, view, defaults)
	if err != nil {
		return engine.CreateRequest{}, true, err
	}
	req := engine.CreateRequest{
		Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: ctx,
		Initiator: Initiator, SourceSystem: tr.Type, Reason: reason, Actor: Initiator,
		IdempotencyScope: engine.TriggerScope,
	}
	if key != "" {
		req.IdempotencyKey = IdempotencyKey(tr.Type, key+"#"+tpl.Namespace+"/"+tpl.Name)
	}
	return req, true, nil
}

// IdempotencyKey returns key, or "<kind>:sha256:<hex>" of it when it is
// longer than MaxIdempotencyKeyLen.
func IdempotencyKey(kind, key string) string {
	if len(key) <= MaxIdempotencyKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return kind + ":sha256:" + hex.EncodeToString(sum[:])
}

func buildContext(mapping map[string]string, view any, defaults map[string]any) (json.RawMessage, error) {
	out := map[string]any{}
	if len(mapping) == 0 {
		for k, v := range defaults {
			out[k] = v
		}
	}
	var errs []error
	for field, p := range mapping {
		segs, err := parsePath(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("context.%s: %w", field, err))
			continue
		}
		if v, ok := lookup(view, segs); ok {
			out[field] = v
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode context: %w", err)
	}
	return b, nil
}

func oneOf(allowed []string, v string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == v {
			return true
		}
	}
	return false
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
