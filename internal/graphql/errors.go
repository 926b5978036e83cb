package graphql

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Error codes: extensions.code of every error, the last segment of the
// REST problem type it mirrors (extensions.type is the whole URI).
const (
	CodeMalformed        = "malformed-request"      // 400
	CodeInvalidParameter = "invalid-parameter"      // 400: a bad argument (id, name, limit, cursor)
	CodeForbidden        = "forbidden"              // 403: extensions.permission names what is missing
	CodeNotFound         = "not-found"              // 404
	CodeMethodNotAllowed = "method-not-allowed"     // 405
	CodeConflict         = "conflict"               // 409
	CodeTooLarge         = "payload-too-large"      // 413
	CodeUnsupportedMedia = "unsupported-media-type" // 415
	CodeValidation       = "validation"             // 422: the query or an input does not fit
	CodeInternal         = "internal"               // 500
	CodeUnavailable      = "unavailable"            // 503
)

// ProblemBase prefixes extensions.type, as it does REST problem types.
const ProblemBase = "https://tasker.dev/problems/"

// Codes lists every code, for the test that keeps them REST problem types.
func Codes() []string {
	return []string{CodeMalformed, CodeInvalidParameter, CodeForbidden, CodeNotFound, CodeMethodNotAllowed,
		CodeConflict, CodeTooLarge, CodeUnsupportedMedia, CodeValidation, CodeInternal, CodeUnavailable}
}

var codeStatus = map[string]int{
	CodeMalformed: http.StatusBadRequest, CodeInvalidParameter: http.StatusBadRequest, CodeForbidden: http.StatusForbidden,
	CodeNotFound: http.StatusNotFound, CodeMethodNotAllowed: http.StatusMethodNotAllowed, CodeConflict: http.StatusConflict,
	CodeTooLarge: http.StatusRequestEntityTooLarge, CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeValidation: http.StatusUnprocessableEntity, CodeInternal: http.StatusInternalServerError,
	CodeUnavailable: http.StatusServiceUnavailable,
}

// fieldError is one invalid input of a mutation (extensions.errors).
type fieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// codedError is a resolver's error with its code.
type codedError struct {
	code   string
	msg    string
	fields []fieldError
}

func (e *codedError) Error() string { return e.msg }

func coded(code, format string, args ...any) *codedError {
	return &codedError{code: code, msg: fmt.Sprintf(format, args...)}
}

func invalidInput(errs ...fieldError) *codedError {
	msg := "the input is not valid"
	if len(errs) == 1 {
		msg = errs[0].Field + ": " + errs[0].Detail
	} else if len(errs) > 1 {
		msg = fmt.Sprintf("the input has %d invalid fields", len(errs))
	}
	return &codedError{code: CodeValidation, msg: msg, fields: errs}
}

// newError is a request-level error.
func newError(code, msg string) *gqlerror.Error {
	e := &gqlerror.Error{Message: msg}
	setCode(e, code)
	return e
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
	e.Extensions["type"] = ProblemBase + code
}

// known maps the engine's, the store's and the templates' errors to codes,
// like the REST API's errorProblems.
func known(err error) *codedError {
	var ce *codedError
	var tce *template.ContextError
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &tce):
		errs := make([]fieldError, 0, len(tce.Violations))
		for _, v := range tce.Violations {
			errs = append(errs, fieldError{Field: "input.context" + v.Pointer, Detail: v.Message})
		}
		if len(errs) == 0 {
			errs = append(errs, fieldError{Field: "input.context", Detail: "does not match the template's context_schema"})
		}
		out := invalidInput(errs...)
		out.msg = "the context does not match the template's context_schema"
		return out
	case errors.Is(err, template.ErrNotFound):
		detail, _, _ := template.NotFoundDetail(err, "", "")
		return coded(CodeNotFound, "%s", detail)
	case errors.Is(err, engine.ErrIdempotencyConflict):
		return coded(CodeConflict, "this idempotency key was used with a different request")
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return coded(CodeNotFound, "not found")
	case errors.Is(err, engine.ErrConflict):
		return coded(CodeConflict, "the resource is not in a state that allows this")
	case errors.Is(err, engine.ErrCallbackExpired):
		return coded(CodeConflict, "the step's wait has expired; it can no longer be completed")
	case errors.Is(err, engine.ErrInvalidResult):
		return invalidInput(fieldError{Field: "result", Detail: err.Error()})
	}
	return nil
}

// present turns every error into a GraphQL error with a code. An error of
// unknown meaning is logged and answered as internal, saying nothing of
// its cause (no SQL, no stack), as the REST API does.
func (h *Handler) present(ctx context.Context, err error) *gqlerror.Error {
	gerr := graphql.DefaultErrorPresenter(ctx, err)
	if c := known(err); c != nil {
		gerr.Message = c.msg
		setCode(gerr, c.code)
		if len(c.fields) > 0 {
			gerr.Extensions["errors"] = c.fields
		}
		return gerr
	}
	var asGQL *gqlerror.Error
	if errors.As(err, &asGQL) && asGQL.Err == nil {
		// gqlgen's own: a parse, validation or argument coercion error.
		if _, ok := gerr.Extensions["code"].(string); !ok || !isCode(gerr.Extensions["code"].(string)) {
			code := CodeValidation
			if c, _ := gerr.Extensions["code"].(string); c == "GRAPHQL_PARSE_FAILED" {
				code = CodeMalformed
			}
			setCode(gerr, code)
		}
		return gerr
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		gerr.Message = "the request was cancelled or timed out"
		setCode(gerr, CodeUnavailable)
		return gerr
	}
	h.log.ErrorContext(ctx, "GraphQL field failed", "error", err, "path", gerr.Path.String())
	gerr.Message = "the server could not complete this field; quote the correlation id when reporting this"
	setCode(gerr, CodeInternal)
	return gerr
}

func isCode(c string) bool {
	_, ok := codeStatus[c]
	return ok
}

// statusOf is the HTTP status of a request refused as a whole: that of
// its first error's code.
func statusOf(errs gqlerror.List) int {
	for _, e := range errs {
		if c, ok := e.Extensions["code"].(string); ok {
			if s, ok := codeStatus[c]; ok {
				return s
			}
		}
	}
	return http.StatusUnprocessableEntity
}
