package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// GoawsConfig is AWSConfig for a goaws endpoint with an HTTP client that
// makes goaws v0.5.4's SendMessageBatch behave like SQS's, so code under
// test needs no emulator switches:
//
//   - goaws answers SendMessageBatch with the entries under
//     "SendMessageBatchResultEntry" instead of "Successful" (the JSON
//     protocol's name), so the SDK would see no entry succeed; the client
//     renames the keys in the response.
//   - goaws ignores DelaySeconds of batch entries; when any entry has a
//     delay, the client sends the entries one by one with SendMessage
//     (which honours it) and answers with the batch response SQS would
//     give.
//
// Use AWSConfig to talk to goaws unaltered.
func GoawsConfig(endpoint string) aws.Config {
	cfg := AWSConfig(endpoint)
	cfg.HTTPClient = &http.Client{Transport: goawsTransport{base: http.DefaultTransport}}
	return cfg
}

const (
	jsonContentType = "application/x-amz-json-1.0"
	targetHeader    = "X-Amz-Target"
)

type goawsTransport struct{ base http.RoundTripper }

func (g goawsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get(targetHeader) != "AmazonSQS.SendMessageBatch" || req.Body == nil {
		return g.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var in struct {
		QueueURL string                       `json:"QueueUrl"`
		Entries  []map[string]json.RawMessage `json:"Entries"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("goaws shim: decode SendMessageBatch: %w", err)
	}
	delayed := false
	for _, e := range in.Entries {
		var d int
		if raw, ok := e["DelaySeconds"]; ok && json.Unmarshal(raw, &d) == nil && d > 0 {
			delayed = true
		}
	}
	if delayed {
		return g.sendOneByOne(req, in.QueueURL, in.Entries)
	}
	fwd := req.Clone(req.Context())
	fwd.Body = io.NopCloser(bytes.NewReader(body))
	fwd.ContentLength = int64(len(body))
	resp, err := g.base.RoundTrip(fwd)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rb, &out); err == nil {
		rename := map[string]string{"SendMessageBatchResultEntry": "Successful", "BatchResultErrorEntry": "Failed"}
		for from, to := range rename {
			if v, ok := out[from]; ok {
				if _, has := out[to]; !has {
					out[to] = v
				}
				delete(out, from)
			}
		}
		rb, _ = json.Marshal(out)
	}
	return replaceBody(resp, rb), nil
}

// sendOneByOne sends batch entries with SendMessage and builds the batch
// response.
func (g goawsTransport) sendOneByOne(req *http.Request, queueURL string, entries []map[string]json.RawMessage) (*http.Response, error) {
	type failed struct {
		ID          string `json:"Id"`
		Code        string `json:"Code"`
		Message     string `json:"Message,omitempty"`
		SenderFault bool   `json:"SenderFault"`
	}
	result := struct {
		Successful []map[string]any `json:"Successful"`
		Failed     []failed         `json:"Failed"`
	}{Successful: []map[string]any{}, Failed: []failed{}}
	var last *http.Response
	for _, e := range entries {
		var id string
		_ = json.Unmarshal(e["Id"], &id)
		msg := map[string]json.RawMessage{}
		for k, v := range e {
			if k != "Id" {
				msg[k] = v
			}
		}
		msg["QueueUrl"], _ = json.Marshal(queueURL)
		b, _ := json.Marshal(msg)
		one, err := http.NewRequestWithContext(req.Context(), http.MethodPost, req.URL.String(), bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		one.Header.Set("Content-Type", jsonContentType)
		one.Header.Set(targetHeader, "AmazonSQS.SendMessage")
		resp, err := g.base.RoundTrip(one)
		if err != nil {
			return nil, err
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		last = resp
		if resp.StatusCode != http.StatusOK {
			result.Failed = append(result.Failed, failed{ID: id, Code: "HTTP" + strconv.Itoa(resp.StatusCode), Message: string(rb), SenderFault: resp.StatusCode < 500})
			continue
		}
		var sent map[string]any
		if err := json.Unmarshal(rb, &sent); err != nil {
			return nil, fmt.Errorf("goaws shim: decode SendMessage response: %w", err)
		}
		entry := map[string]any{"Id": id}
		for _, k := range []string{"MessageId", "MD5OfMessageBody", "MD5OfMessageAttributes", "MD5OfMessageSystemAttributes", "SequenceNumber"} {
			if v, ok := sent[k]; ok && v != "" {
				entry[k] = v
			}
		}
		result.Successful = append(result.Successful, entry)
	}
	b, _ := json.Marshal(result)
	resp := &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {jsonContentType}}, Request: req,
	}
	if last != nil {
		if id := last.Header.Get("X-Amzn-Requestid"); id != "" {
			resp.Header.Set("X-Amzn-Requestid", id)
		}
	}
	return replaceBody(resp, b), nil
}

func replaceBody(resp *http.Response, b []byte) *http.Response {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Del("Content-Encoding")
	resp.Uncompressed = true
	return resp
}
