package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/wire"
)

// ProblemBase prefixes every problem type URI. The URIs are stable
// identifiers (RFC 9457 §3.1.1); clients switch on them, not on titles.
const ProblemBase = "https://tasker.dev/problems/"

// Problem types and their statuses.
const (
	TypeMalformed        = ProblemBase + "malformed-request"      // 400: body is not one JSON object
	TypeInvalidParameter = ProblemBase + "invalid-parameter"      // 400: bad path or query parameter
	TypeUnauthorized     = ProblemBase + "unauthorized"           // 401
	TypeForbidden        = ProblemBase + "forbidden"              // 403
	TypeNotFound         = ProblemBase + "not-found"              // 404
	TypeMethodNotAllowed = ProblemBase + "method-not-allowed"     // 405
	TypeConflict         = ProblemBase + "conflict"               // 409
	TypeTooLarge         = ProblemBase + "payload-too-large"      // 413
	TypeMisdirected      = ProblemBase + "misdirected-request"    // 421: Host not one of this server's names
	TypeUnsupportedMedia = ProblemBase + "unsupported-media-type" // 415
	TypeValidation       = ProblemBase + "validation"             // 422: well-formed JSON that does not fit
	TypeInternal         = ProblemBase + "internal"               // 500
	TypeUnavailable      = ProblemBase + "unavailable"            // 503
)

var titles = map[string]string{
	TypeMalformed:        "Malformed request body",
	TypeInvalidParameter: "Invalid parameter",
	TypeUnauthorized:     "Unauthorized",
	TypeForbidden:        "Forbidden",
	TypeNotFound:         "Not found",
	TypeMethodNotAllowed: "Method not allowed",
	TypeConflict:         "Conflict",
	TypeTooLarge:         "Payload too large",
	TypeMisdirected:      "Misdirected request",
	TypeUnsupportedMedia: "Unsupported media type",
	TypeValidation:       "Validation failed",
	TypeInternal:         "Internal server error",
	TypeUnavailable:      "Service unavailable",
}

// Problem is an RFC 9457 problem detail (wire.Problem) with the extra
// response headers (WWW-Authenticate, Allow) the server sends with it.
type Problem struct {
	wire.Problem

	header http.Header
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

func newProblem(status int, typ, detail string) *Problem {
	return &Problem{Problem: wire.Problem{Type: typ, Title: titles[typ], Status: status, Detail: detail}}
}

func (p *Problem) withHeader(k, v string) *Problem {
	if p.header == nil {
		p.header = http.Header{}
	}
	p.header.Set(k, v)
	return p
}

func malformed(detail string) *Problem {
	return newProblem(http.StatusBadRequest, TypeMalformed, detail)
}

func badParam(name, detail string) *Problem {
	p := newProblem(http.StatusBadRequest, TypeInvalidParameter, detail)
	p.Errors = []FieldError{{Parameter: name, Detail: detail}}
	return p
}

func invalid(errs ...FieldError) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, TypeValidation, "the request body is not valid")
	switch {
	case len(errs) == 1 && errs[0].Pointer != "":
		p.Detail = errs[0].Pointer + ": " + errs[0].Detail
	case len(errs) == 1:
		p.Detail = errs[0].Detail
	case len(errs) > 1:
		p.Detail = "the request body has " + strconv.Itoa(len(errs)) + " invalid fields"
	}
	p.Errors = errs
	return p
}

func notFound(detail string) *Problem {
	return newProblem(http.StatusNotFound, TypeNotFound, detail)
}

func conflict(detail string) *Problem {
	return newProblem(http.StatusConflict, TypeConflict, detail)
}

func tooLarge(limit int64) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, TypeTooLarge,
		"the request body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// write sends p as application/problem+json.
func (s *server) writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Title == "" {
		p.Title = titles[p.Type]
	}
	p.Instance = r.URL.Path
	p.CorrelationID = correlationFrom(r.Context())
	for k, vs := range p.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: plain strings and ints
		body = []byte(`{"type":"` + TypeInternal + `","title":"Internal server error","status":500}`)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// fail answers with the problem err stands for (problemFor). Errors that
// are not problems and carry no known meaning are logged and become a
// generic 500 whose body says nothing about the cause (no SQL, no stack).
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	switch {
	case p != nil:
	case r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		s.log.InfoContext(r.Context(), "request ended before it was answered", "error", err, "path", r.URL.Path)
		p = newProblem(http.StatusServiceUnavailable, TypeUnavailable, "the request was cancelled or timed out")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "error", err, "method", r.Method, "path", r.URL.Path,
			"correlation_id", correlationFrom(r.Context()))
		p = internalProblem()
	}
	s.writeProblem(w, r, p)
}

func internalProblem() *Problem {
	return newProblem(http.StatusInternalServerError, TypeInternal,
		"the server could not complete the request; quote the correlation id when reporting this")
}

// errorProblems maps the error values of the engine, the templates and the
// Reader to the problems they stand for. The engine's operations return
// only engine errors for these cases (engine.ErrNotFound...), never the
// store's; the Reader's not-found is store.ErrNotFound (see Reader).
var errorProblems = []struct {
	err     error
	problem func() *Problem
}{
	{engine.ErrNotFound, func() *Problem { return notFound("not found") }},
	{store.ErrNotFound, func() *Problem { return notFound("not found") }},
	// Says nothing of the task that holds the key.
	{engine.ErrIdempotencyConflict, func() *Problem {
		return conflict("this idempotency key was used with a different request")
	}},
	{engine.ErrConflict, func() *Problem { return conflict("the resource is not in a state that allows this") }},
}

// problemFor returns the problem err stands for, or nil when err has no
// known meaning (the caller answers 500 or 503).
func problemFor(err error) *Problem {
	var p *Problem
	var mbe *http.MaxBytesError
	var ce *template.ContextError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.As(err, &ce):
		return contextProblem(ce)
	}
	if detail, _, ok := template.NotFoundDetail(err, "", ""); ok {
		return notFound(detail)
	}
	for _, m := range errorProblems {
		if errors.Is(err, m.err) {
			return m.problem()
		}
	}
	return nil
}

// isNotFound reports whether err means a missing task or step, from the
// engine or the Reader.
func isNotFound(err error) bool {
	return errors.Is(err, engine.ErrNotFound) || errors.Is(err, store.ErrNotFound)
}

// contextProblem turns a context_schema failure into a 422 whose pointers
// address the request body ("/context/payment_info/amount").
func contextProblem(ce *template.ContextError) *Problem {
	errs := make([]FieldError, 0, len(ce.Violations))
	for _, v := range ce.Violations {
		errs = append(errs, FieldError{Pointer: "/context" + v.Pointer, Detail: v.Message})
	}
	if len(errs) == 0 {
		errs = append(errs, FieldError{Pointer: "/context", Detail: "does not match the template's context_schema"})
	}
	p := invalid(errs...)
	p.Detail = "the context does not match the template's context_schema"
	return p
}
