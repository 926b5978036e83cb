package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/taskerhq/tasker/sdk/contract"
)

// Large payloads (docs/handlers.md, "Large payloads"): a context or parent
// result over the inline threshold arrives as {"tasker_ref":{…,"url"}} and
// is fetched before the handler runs; a result over the threshold is PUT to
// tasker.result_upload.url and returned as a reference. Every runtime's
// shim implements the same protocol.

// Error codes of large payloads.
const (
	// CodePayloadUnavailable: a referenced value could not be fetched
	// (retryable).
	CodePayloadUnavailable = "payload_unavailable"
	// CodePayloadRefInvalid: a referenced value is not what its reference
	// says (size or sha256), or the reference is malformed (permanent).
	CodePayloadRefInvalid = "payload_ref_invalid"
	// CodeResultUploadFailed: a large result could not be uploaded
	// (retryable).
	CodeResultUploadFailed = "result_upload_failed"
)

// blobClient fetches and uploads referenced values; the URLs are
// pre-signed, so it sends no credentials. Deadlines come from ctx.
var blobClient = &http.Client{}

// resolvePayload replaces every reference in p's context and parent
// results with the value it stands for.
func resolvePayload(ctx context.Context, p *contract.Payload) error {
	v, err := resolveValue(ctx, p.Context, "context")
	if err != nil {
		return err
	}
	p.Context = v
	for name, r := range p.Results {
		v, err := resolveValue(ctx, r, "result of "+name)
		if err != nil {
			return err
		}
		p.Results[name] = v
	}
	return nil
}

// resolveValue returns v, or the value v references.
func resolveValue(ctx context.Context, v json.RawMessage, what string) (json.RawMessage, error) {
	ref, ok, err := contract.AsRef(v)
	if err != nil {
		return nil, Permanent(WithCode(fmt.Errorf("%s: %w", what, err), CodePayloadRefInvalid))
	}
	if !ok {
		return v, nil
	}
	if ref.URL == "" {
		return nil, Permanent(WithCode(fmt.Errorf("%s: reference %s has no url", what, ref.URI), CodePayloadRefInvalid))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ref.URL, nil)
	if err != nil {
		return nil, Permanent(WithCode(fmt.Errorf("%s: reference url: %w", what, err), CodePayloadRefInvalid))
	}
	resp, err := blobClient.Do(req)
	if err != nil {
		return nil, WithCode(fmt.Errorf("%s: fetch %s: %w", what, ref.URI, err), CodePayloadUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, WithCode(fmt.Errorf("%s: fetch %s: HTTP %d", what, ref.URI, resp.StatusCode), CodePayloadUnavailable)
	}
	// One byte past the announced size shows a longer body without
	// reading all of it.
	body, err := io.ReadAll(io.LimitReader(resp.Body, ref.Size+1))
	if err != nil {
		return nil, WithCode(fmt.Errorf("%s: fetch %s: %w", what, ref.URI, err), CodePayloadUnavailable)
	}
	if int64(len(body)) != ref.Size {
		return nil, Permanent(WithCode(fmt.Errorf("%s: %s is not %d bytes as its reference says", what, ref.URI, ref.Size), CodePayloadRefInvalid))
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, Permanent(WithCode(fmt.Errorf("%s: %s does not match the sha256 of its reference", what, ref.URI), CodePayloadRefInvalid))
	}
	return body, nil
}

// offloadResult uploads an encoded result over the inline threshold and
// returns the reference to return instead; a result within the threshold,
// or a payload without result_upload, is returned as is.
func offloadResult(ctx context.Context, up *contract.Upload, out []byte) ([]byte, error) {
	if up == nil || len(out) <= up.InlineLimit {
		return out, nil
	}
	if up.MaxBytes > 0 && int64(len(out)) > up.MaxBytes {
		return nil, Permanent(WithCode(fmt.Errorf("result is %d bytes, over the %d-byte limit on step results (TASKER_PAYLOAD_MAX_BYTES)",
			len(out), up.MaxBytes), CodeResultTooLarge))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, up.URL, bytes.NewReader(out))
	if err != nil {
		return nil, Permanent(WithCode(fmt.Errorf("result upload url: %w", err), CodePayloadRefInvalid))
	}
	req.ContentLength = int64(len(out))
	resp, err := blobClient.Do(req)
	if err != nil {
		return nil, WithCode(fmt.Errorf("upload result: %w", err), CodeResultUploadFailed)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, WithCode(fmt.Errorf("upload result: HTTP %d", resp.StatusCode), CodeResultUploadFailed)
	}
	sum := sha256.Sum256(out)
	ref, err := json.Marshal(contract.RefEnvelope{Ref: &contract.Ref{URI: up.URI, Size: int64(len(out)), SHA256: hex.EncodeToString(sum[:])}})
	if err != nil {
		return nil, errors.New("encode result reference") // cannot happen
	}
	return ref, nil
}

// resolvedRaw is the raw payload Input.Raw returns: the original bytes
// when nothing was referenced, else nil (Raw then encodes the resolved
// payload).
func resolvedRaw(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`"tasker_ref"`)) {
		return raw
	}
	return nil
}
