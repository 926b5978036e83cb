package lambdaapp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// NewLogger returns the JSON logger of a function: slog's JSON handler on
// w at the level LOG_LEVEL names (debug, info, warn or error; default
// info), adding the Lambda request id ("aws_request_id") to every record
// logged with an invocation's context. An unknown level is reported in the
// first record and info is used.
func NewLogger(w io.Writer, getenv func(string) string) *slog.Logger {
	level := slog.LevelInfo
	var bad error
	if v := strings.TrimSpace(getenv(EnvLogLevel)); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			level, bad = slog.LevelInfo, fmt.Errorf("%s=%q: %w; using info", EnvLogLevel, v, err)
		}
	}
	log := slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
	if bad != nil {
		log.Warn("ignoring invalid log level", "error", bad.Error())
	}
	return log
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
