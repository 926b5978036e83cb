package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// Media context (media/transcode, a long job completed by a callback:
// docs/control-flow.md):
//
//	{"video_id": "…", "source_url": "s3://…", "formats": ["1080p", "720p"],
//	 "runner_url": "http://…"}
//
// submit_transcode hands the job to an outside runner (ECS, Batch, a
// worker fleet: anything that can make an HTTP request) with the step's
// callback token and answers tasker_pending, so the step waits until the
// runner reports back on POST /v1/callbacks/{token}/success (or failure,
// or heartbeat while it works).

func probeVideo(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	id := d.str("video_id")
	if id == "" || d.str("source_url") == "" {
		return nil, permanent("invalid_input", "media context needs video_id and source_url")
	}
	return map[string]any{
		"video_id": id, "duration_seconds": 60 + hashInt(3600, "duration", id), "width": 1920, "height": 1080,
	}, ctxCheck(ctx)
}

// jobTimeout is how long the runner has to report back between heartbeats.
const jobTimeout = 6 * time.Hour

func submitTranscode(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	token := in.CallbackToken()
	if token == "" {
		return nil, permanent("no_callback_token", "the payload carries no tasker.callback_token")
	}
	job := map[string]any{
		"job_id": stableID("job_", in, "transcode"), "video_id": d.str("video_id"), "source_url": d.str("source_url"),
		"formats": d.list("formats"), "callback_token": token,
	}
	if runner := d.str("runner_url"); runner != "" {
		if err := postJob(ctx, runner, job); err != nil {
			return nil, err
		}
	}
	// {"tasker_pending": {"timeout_seconds": …}}: the step waits for the runner.
	return sdk.Pending(time.Duration(configFloat(in, "timeout_seconds", jobTimeout.Seconds())) * time.Second), nil
}

// postJob sends the job to the runner; any failure is retryable (the
// runner de-duplicates by job_id).
func postJob(ctx context.Context, runner string, job map[string]any) error {
	u, err := url.Parse(runner)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return permanent("invalid_runner_url", "runner_url %q is not an http(s) URL", runner)
	}
	body, err := json.Marshal(job)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return sdk.WithCode(fmt.Errorf("submit job: %w", err), "runner_unavailable")
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return sdk.WithCode(fmt.Errorf("submit job: runner answered %s", res.Status), "runner_unavailable")
	}
	return nil
}

func publishVideo(ctx context.Context, in sdk.Input) (any, error) {
	p, ok := parentWith(in, "outputs")
	if !ok {
		return nil, permanent("missing_input", "no parent result carries the transcoded outputs")
	}
	return map[string]any{"published": true, "outputs": p["outputs"], "published_at": now()}, ctxCheck(ctx)
}
