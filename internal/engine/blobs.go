package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

// Large payloads (docs/architecture.md, "Large payloads"): a context or
// result over the inline threshold is stored in a Blobs store and the task
// or step row holds only its reference, so scheduler passes never carry the
// bytes; dispatch adds a signed GET URL to each reference in the payload
// and a signed PUT URL for a large result (contract.Upload).

// Blobs stores values too large to travel inline: S3 on AWS, PostgreSQL
// behind signed URLs that `tasker dev` serves locally. Keys start with
// tasks/<task id>/. A missing key is fs.ErrNotExist (wrapped).
type Blobs interface {
	PutBlob(ctx context.Context, key string, data []byte) error
	GetBlob(ctx context.Context, key string) ([]byte, error)
	BlobSize(ctx context.Context, key string) (int64, error)
	// URI names key in references; Key is its inverse (false for a URI
	// of another store).
	URI(key string) string
	Key(uri string) (string, bool)
	// SignGet and SignPut return HTTP URLs, valid for ttl, that read or
	// write key without other credentials.
	SignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	SignPut(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Large payload defaults (TASKER_PAYLOAD_INLINE_BYTES,
// TASKER_PAYLOAD_MAX_BYTES).
const (
	DefaultPayloadInlineBytes = 200 << 10
	DefaultPayloadMaxBytes    = 10 << 20
	// maxSignTTL is the longest an S3 presigned URL may live.
	maxSignTTL = 7 * 24 * time.Hour
	// signSlack is added to a step's deadline for the life of its URLs.
	signSlack = 15 * time.Minute
)

func contextKey(task uuid.UUID) string { return "tasks/" + task.String() + "/context" }

func resultKey(task, step uuid.UUID, attempt int) string {
	return fmt.Sprintf("tasks/%s/steps/%s/%d/result", task, step, attempt)
}

// spillKey names a value moved out of a payload at dispatch (an inline
// value that, with the others, made the payload too large).
func spillKey(task uuid.UUID, sum string) string { return "tasks/" + task.String() + "/values/" + sum }

// offload stores v under key and returns its reference.
func (e *Engine) offload(ctx context.Context, key string, v []byte) (json.RawMessage, error) {
	if err := e.cfg.Blobs.PutBlob(ctx, key, v); err != nil {
		return nil, fmt.Errorf("store large value: %w", err)
	}
	sum := sha256.Sum256(v)
	return json.Marshal(contract.RefEnvelope{Ref: &contract.Ref{URI: e.cfg.Blobs.URI(key), Size: int64(len(v)), SHA256: hex.EncodeToString(sum[:])}})
}

// ErrPayloadMismatch is wrapped by Resolve for a stored value whose size or
// SHA-256 is not its reference's: corrupted, or replaced behind Tasker's back.
var ErrPayloadMismatch = errors.New("the stored value does not match its reference's size and sha256")

// Resolve returns v whole: v itself, or the value its reference names.
// The API returns contexts and results through it. A value no longer
// stored is fs.ErrNotExist (wrapped); one that does not match its
// reference, ErrPayloadMismatch.
func (e *Engine) Resolve(ctx context.Context, v json.RawMessage) (json.RawMessage, error) {
	// A malformed reference is returned as stored.
	ref, ok, err := contract.AsRef(v)
	if err != nil || !ok || e.cfg.Blobs == nil {
		return v, nil
	}
	key, ok := e.cfg.Blobs.Key(ref.URI)
	if !ok {
		return v, nil
	}
	data, err := e.cfg.Blobs.GetBlob(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref.URI, err)
	}
	if sum := sha256.Sum256(data); int64(len(data)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("resolve %s: %w", ref.URI, ErrPayloadMismatch)
	}
	return data, nil
}

// checkResultRef checks a handler's result reference: it must name the
// upload key of this very attempt (no handler can point at another task's
// data), exist, and be within PayloadMaxBytes. It returns the permanent
// failure the result stands for, or nil.
func (e *Engine) checkResultRef(ctx context.Context, r *contract.Result) *contract.HandlerError {
	ref, ok, err := contract.AsRef(r.Output)
	if !ok {
		return nil
	}
	bad := func(msg string) *contract.HandlerError {
		return &contract.HandlerError{Message: msg, Permanent: true, Code: codeResultRefInvalid}
	}
	if err != nil {
		return bad("result: " + err.Error())
	}
	if e.cfg.Blobs == nil {
		return bad("result is a tasker_ref, but large payloads are off here (no blob store)")
	}
	want := resultKey(r.TaskID, r.StepID, r.Attempt)
	if key, ok := e.cfg.Blobs.Key(ref.URI); !ok || key != want {
		return bad(fmt.Sprintf("result reference %q is not this attempt's upload (%s)", ref.URI, e.cfg.Blobs.URI(want)))
	}
	if ref.Size > int64(e.cfg.PayloadMaxBytes) {
		return e.tooLarge(ref.Size)
	}
	n, err := e.cfg.Blobs.BlobSize(ctx, want)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad(fmt.Sprintf("result reference %q names nothing uploaded", ref.URI))
	case err != nil:
		// Not the handler's fault: a retryable failure.
		return &contract.HandlerError{Message: "check result reference: " + err.Error(), Code: codeResultRefInvalid}
	case n > int64(e.cfg.PayloadMaxBytes):
		return e.tooLarge(n)
	case n != ref.Size:
		return bad(fmt.Sprintf("result reference says %d bytes, %d were uploaded", ref.Size, n))
	}
	return nil
}

func (e *Engine) tooLarge(n int64) *contract.HandlerError {
	return &contract.HandlerError{
		Message:   fmt.Sprintf("result is %d bytes, over the %d-byte limit on step results (TASKER_PAYLOAD_MAX_BYTES)", n, e.cfg.PayloadMaxBytes),
		Permanent: true, Code: codeResultTooLarge,
	}
}

const codeResultRefInvalid = "result_ref_invalid"

// signTTL is how long the URLs of a claim live: until its deadline and a
// margin, at most maxSignTTL.
func (e *Engine) signTTL(deadline time.Time) time.Duration {
	return min(max(deadline.Sub(e.clock.Now()), 0)+signSlack, maxSignTTL)
}

// signRef adds a GET URL to v if it is a reference of this store.
func (e *Engine) signRef(ctx context.Context, v json.RawMessage, ttl time.Duration) (json.RawMessage, error) {
	// A malformed reference reaches the handler, which fails on it.
	ref, ok, err := contract.AsRef(v)
	if err != nil || !ok {
		return v, nil
	}
	key, ok := e.cfg.Blobs.Key(ref.URI)
	if !ok {
		return v, nil
	}
	if ref.URL, err = e.cfg.Blobs.SignGet(ctx, key, ttl); err != nil {
		return nil, fmt.Errorf("sign %s: %w", ref.URI, err)
	}
	return json.Marshal(contract.RefEnvelope{Ref: ref})
}

// preparePayload makes the large-payload parts of p: GET URLs for its
// references, the result upload, and, if the encoded payload is still over
// the invoker's limit, moves its largest inline values out of line.
func (e *Engine) preparePayload(ctx context.Context, c store.Claim, p *contract.Payload) ([]byte, error) {
	if e.cfg.Blobs == nil {
		return json.Marshal(p)
	}
	ttl := e.signTTL(c.Deadline)
	var err error
	if p.Context, err = e.signRef(ctx, p.Context, ttl); err != nil {
		return nil, err
	}
	for name, r := range p.Results {
		if p.Results[name], err = e.signRef(ctx, r, ttl); err != nil {
			return nil, err
		}
	}
	key := resultKey(c.TaskID, c.StepID, c.Attempt)
	url, err := e.cfg.Blobs.SignPut(ctx, key, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign result upload: %w", err)
	}
	p.Tasker.ResultUpload = &contract.Upload{URL: url, URI: e.cfg.Blobs.URI(key), InlineLimit: e.cfg.PayloadInlineBytes,
		MaxBytes: int64(e.cfg.PayloadMaxBytes)}
	// The invoker's limit, else the asynchronous invocation limit every
	// handler payload is held to (a local invoker enforces it too).
	limit := e.cfg.MaxPayloadBytes
	if limit <= 0 {
		limit = domain.MaxPayloadBytes
	}
	b, err := json.Marshal(p)
	if err != nil || len(b) <= limit {
		return b, err
	}
	// Several values each within the threshold can still add up past the
	// limit: spill the largest until the payload fits.
	type value struct {
		name string // "" is the context
		size int
	}
	vals := []value{{"", len(p.Context)}}
	for name, r := range p.Results {
		vals = append(vals, value{name, len(r)})
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].size > vals[j].size })
	for _, v := range vals {
		if len(b) <= limit || v.size < 1<<10 {
			break
		}
		raw := p.Context
		if v.name != "" {
			raw = p.Results[v.name]
		}
		if _, isRef, _ := contract.AsRef(raw); isRef {
			continue
		}
		sum := sha256.Sum256(raw)
		ref, err := e.offload(ctx, spillKey(c.TaskID, hex.EncodeToString(sum[:])), raw)
		if err == nil {
			ref, err = e.signRef(ctx, ref, ttl)
		}
		if err != nil {
			return nil, err
		}
		if v.name == "" {
			p.Context = ref
		} else {
			p.Results[v.name] = ref
		}
		if b, err = json.Marshal(p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Environment variables of large payloads (docs/architecture.md,
// "Configuration").
const (
	EnvPayloadInlineBytes = "TASKER_PAYLOAD_INLINE_BYTES"
	EnvPayloadMaxBytes    = "TASKER_PAYLOAD_MAX_BYTES"
	// MaxPayloadInlineBytes bounds TASKER_PAYLOAD_INLINE_BYTES: a value
	// kept inline must leave room in a 256 KiB invocation payload.
	MaxPayloadInlineBytes = 240 << 10
	// MaxPayloadMaxBytes bounds TASKER_PAYLOAD_MAX_BYTES.
	MaxPayloadMaxBytes = 64 << 20
)

// PayloadLimits are the large-payload settings.
type PayloadLimits struct {
	InlineBytes int // TASKER_PAYLOAD_INLINE_BYTES, default 200 KiB
	MaxBytes    int // TASKER_PAYLOAD_MAX_BYTES, default 10 MiB
}

// PayloadLimitsFromEnv reads TASKER_PAYLOAD_INLINE_BYTES (1 KiB to 240
// KiB) and TASKER_PAYLOAD_MAX_BYTES (64 KiB to 64 MiB, and not below the
// inline threshold).
func PayloadLimitsFromEnv(getenv config.Getenv) (PayloadLimits, error) {
	inline, err := config.Int(getenv, EnvPayloadInlineBytes, DefaultPayloadInlineBytes, 1<<10, MaxPayloadInlineBytes)
	if err != nil {
		return PayloadLimits{}, err
	}
	maxBytes, err := config.Int(getenv, EnvPayloadMaxBytes, DefaultPayloadMaxBytes, 64<<10, MaxPayloadMaxBytes)
	if err != nil {
		return PayloadLimits{}, err
	}
	if maxBytes < inline {
		return PayloadLimits{}, fmt.Errorf("%s=%d is below %s=%d; want the limit at or above the inline threshold",
			EnvPayloadMaxBytes, maxBytes, EnvPayloadInlineBytes, inline)
	}
	return PayloadLimits{InlineBytes: inline, MaxBytes: maxBytes}, nil
}

// MaxContextBytes is the largest context CreateTask accepts:
// PayloadMaxBytes with a blob store, else what fits in one invocation
// payload (0: no limit).
func (e *Engine) MaxContextBytes() int {
	if e.cfg.Blobs != nil {
		return e.cfg.PayloadMaxBytes
	}
	return max(e.cfg.MaxPayloadBytes-PayloadReserve, 0)
}

// codePayloadUnavailable: a stored value could not be read (retryable).
const codePayloadUnavailable = "payload_unavailable"

// wholeClaim returns c with its context and parent results whole, for the
// engine's own reads (conditions, wait times).
func (e *Engine) wholeClaim(ctx context.Context, c store.Claim) (store.Claim, error) {
	if e.cfg.Blobs == nil {
		return c, nil
	}
	var err error
	if c.Context, err = e.Resolve(ctx, c.Context); err != nil {
		return c, err
	}
	if len(c.Results) == 0 || !bytes.Contains(c.Results, []byte(`"tasker_ref"`)) {
		return c, nil
	}
	var results map[string]json.RawMessage
	if err := json.Unmarshal(c.Results, &results); err != nil {
		return c, fmt.Errorf("parent results of %s: %w", c.Step, err)
	}
	for name, r := range results {
		if results[name], err = e.Resolve(ctx, r); err != nil {
			return c, err
		}
	}
	c.Results, err = json.Marshal(results)
	return c, err
}
