package lambdaapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/taskerhq/tasker/internal/migrate"
)

// SchemaResourceID is the physical resource id of the schema custom
// resource. It never changes, so CloudFormation never replaces (and
// deletes) the resource.
const SchemaResourceID = "tasker-schema"

// Defaults of CustomResource.
const (
	DefaultReserve   = 15 * time.Second
	maxReasonBytes   = 2000 // CloudFormation takes a 4 KiB response body
	responseAttempts = 5
)

// CustomResource answers CloudFormation for the Custom::TaskerMigration
// resource: Create and Update apply the pending migrations, Delete succeeds
// without touching the database (deleting the stack keeps the data). It
// always answers: a failure (including a database that cannot be reached,
// a panic, or migrations still running when the invocation is about to
// time out) is answered FAILED with the reason, so the deploy fails and
// rolls back instead of waiting an hour for a response.
type CustomResource struct {
	// Apply applies the migrations.
	Apply func(ctx context.Context) (migrate.Result, error)
	// Client sends the response to the pre-signed ResponseURL.
	Client *http.Client
	Logger *slog.Logger
	// Reserve is kept back from the invocation's deadline for answering
	// CloudFormation (default DefaultReserve).
	Reserve time.Duration
	// Backoff is the first pause between response attempts (default 1 s,
	// doubling).
	Backoff time.Duration
}

// Handle answers one request and returns the response sent. It returns an
// error only when CloudFormation could not be told, so that Lambda retries
// the invocation (applying migrations again is a no-op).
func (c *CustomResource) Handle(ctx context.Context, ev cfn.Event) (cfn.Response, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resp := cfn.Response{
		RequestID: ev.RequestID, LogicalResourceID: ev.LogicalResourceID, StackID: ev.StackID,
		PhysicalResourceID: ev.PhysicalResourceID,
	}
	if resp.PhysicalResourceID == "" {
		resp.PhysicalResourceID = SchemaResourceID
	}
	log.InfoContext(ctx, "custom resource request", "request_type", ev.RequestType, "logical_resource_id", ev.LogicalResourceID,
		"stack_id", ev.StackID, "resource_type", ev.ResourceType)
	switch ev.RequestType {
	case cfn.RequestCreate, cfn.RequestUpdate:
		res, err := c.apply(ctx)
		if err != nil {
			resp.Status, resp.Reason = cfn.StatusFailed, reason(err)
			log.ErrorContext(ctx, "migrations failed", "error", err, "applied", res.Applied, "schema_version", res.Current)
			break
		}
		resp.Status = cfn.StatusSuccess
		resp.Data = map[string]any{"SchemaVersion": res.Current, "Applied": strings.Join(res.Applied, ",")}
		log.InfoContext(ctx, "migrations applied", "applied", res.Applied, "schema_version", res.Current)
	case cfn.RequestDelete:
		resp.Status = cfn.StatusSuccess
	default:
		resp.Status, resp.Reason = cfn.StatusFailed, reason(fmt.Errorf("unknown RequestType %q", ev.RequestType))
	}
	if err := c.send(ctx, ev.ResponseURL, resp); err != nil {
		log.ErrorContext(ctx, "could not answer CloudFormation", "error", err, "status", resp.Status)
		return resp, err
	}
	log.InfoContext(ctx, "answered CloudFormation", "status", resp.Status, "reason", resp.Reason)
	return resp, nil
}

// apply runs Apply with the invocation's deadline less the reserve, and
// turns a panic into an error.
func (c *CustomResource) apply(ctx context.Context) (res migrate.Result, err error) {
	if c.Apply == nil {
		return migrate.Result{}, errors.New("no migrator configured")
	}
	reserve := c.Reserve
	if reserve <= 0 {
		reserve = DefaultReserve
	}
	work := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, d.Add(-reserve))
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("migrator panicked: %v\n%s", r, debug.Stack())
		}
	}()
	res, err = c.Apply(work)
	if err != nil && work.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("migrations did not finish within the function's timeout (less %s kept to answer CloudFormation): %w", reserve, err)
	}
	return res, err
}

// reason is a FAILED response's reason: the error, where to read more,
// and short enough for CloudFormation.
func reason(err error) string {
	msg := err.Error()
	if stream := lambdacontext.LogStreamName; stream != "" {
		msg += " (log stream " + lambdacontext.LogGroupName + " " + stream + ")"
	}
	if len(msg) > maxReasonBytes {
		cut := maxReasonBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// send PUTs the response to the pre-signed URL, retrying connection errors
// and 5xx/429 answers with backoff while ctx allows.
func (c *CustomResource) send(ctx context.Context, url string, resp cfn.Response) error {
	if url == "" {
		return errors.New("the request has no ResponseURL")
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	var last error
	for attempt := 1; attempt <= responseAttempts; attempt++ {
		retry, err := put(ctx, client, url, body)
		if err == nil {
			return nil
		}
		last = fmt.Errorf("attempt %d: %w", attempt, err)
		if !retry || attempt == responseAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return errors.Join(last, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return fmt.Errorf("PUT response to CloudFormation: %w", last)
}

func put(ctx context.Context, client *http.Client, url string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	// The URL is pre-signed without a content type, and none is sent.
	res, err := client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return false, nil
	}
	return res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests,
		fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(msg)))
}
