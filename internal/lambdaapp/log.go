package lambdaapp

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/taskerhq/tasker/internal/config"
)

// NewLogger returns the JSON logger of a function: slog's JSON handler on
// w at the level LOG_LEVEL names (config.LogLevel: debug, info, warn or
// error, case-insensitive; default info), adding the Lambda request id
// ("aws_request_id") to every record logged with an invocation's context.
// An invalid level logs at info: it is a setup error (Function.Handler),
// which this logger reports.
func NewLogger(w io.Writer, getenv func(string) string) *slog.Logger {
	level, _ := config.LogLevel(getenv)
	return slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// requestIDHandler adds the Lambda request id of the record's context.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		r.AddAttrs(slog.String("aws_request_id", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
