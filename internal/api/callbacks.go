package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/wire"
)

// TypeGone is the problem type of a callback whose wait has expired (410).
const TypeGone = ProblemBase + "gone"

func init() { titles[TypeGone] = "Gone" }

// maxFailureMessage bounds a callback failure's message.
const maxFailureMessage = 4000

// Callback routes (docs/architecture.md, "Callbacks"): authorised by the
// token in the path alone, so they are public routes; the token is
// unguessable and bound to one step attempt. 202 on first use, 409 once
// the attempt is over (a reused or stale token), 404 for an unknown token,
// 410 once its wait has expired.

// POST /v1/callbacks/{token}/success: the body is the result (any JSON).
func (s *server) callbackSuccess(w http.ResponseWriter, r *http.Request) {
	result, err := readResult(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.callback(w, r, engine.CallbackRequest{Action: engine.CallbackSuccess, Result: result})
}

// POST /v1/callbacks/{token}/failure: {message, code?, permanent?, retry_after_seconds?}.
func (s *server) callbackFailure(w http.ResponseWriter, r *http.Request) {
	obj, err := readObject(r, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	he := &contract.HandlerError{Message: obj.required("message", maxFailureMessage), Code: obj.str("code", 200)}
	if raw, ok := obj.take("permanent"); ok {
		if err := json.Unmarshal(raw, &he.Permanent); err != nil {
			obj.fail("permanent", "must be a boolean, not "+kindOf(raw))
		}
	}
	if raw, ok := obj.take("retry_after_seconds"); ok {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > contract.MaxWaitSeconds || f != math.Trunc(f) {
			obj.fail("retry_after_seconds", fmt.Sprintf("must be a whole number of seconds from 0 to %d", contract.MaxWaitSeconds))
		} else {
			he.RetryAfterSeconds = int(f)
		}
	}
	if err := obj.finish(); err != nil {
		s.fail(w, r, err)
		return
	}
	s.callback(w, r, engine.CallbackRequest{Action: engine.CallbackFailure, Failure: he})
}

// POST /v1/callbacks/{token}/heartbeat: extends the wait by its timeout;
// the body is empty or {}.
func (s *server) callbackHeartbeat(w http.ResponseWriter, r *http.Request) {
	obj, err := readObject(r, true)
	if err == nil {
		err = obj.finish()
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.callback(w, r, engine.CallbackRequest{Action: engine.CallbackHeartbeat})
}

func (s *server) callback(w http.ResponseWriter, r *http.Request, req engine.CallbackRequest) {
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.eng.Callback(r.Context(), r.PathValue("token"), req)
	if err != nil {
		s.fail(w, r, callbackProblem(err, ""))
		return
	}
	body, err := json.Marshal(wire.CallbackAccepted{TaskID: out.TaskID.String(), Step: out.Step, Attempt: out.Attempt,
		Status: string(out.State), WaitingUntil: tsp(out.WaitingUntil)})
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode callback: %w", err))
		return
	}
	writeBody(w, http.StatusAccepted, append(body, '\n'))
}

// callbackProblem maps the engine's callback errors; pointer names the
// result in the request body ("" for a callback, whose body is the result).
func callbackProblem(err error, pointer string) error {
	switch {
	case errors.Is(err, engine.ErrCallbackExpired):
		return newProblem(http.StatusGone, TypeGone, "the wait this callback token belongs to has expired; its step attempt failed with code "+engine.CodeCallbackTimeout)
	case errors.Is(err, engine.ErrInvalidResult):
		return invalid(FieldError{Pointer: pointer, Detail: err.Error()})
	case errors.Is(err, engine.ErrNotFound) && pointer == "":
		return notFound("no step attempt has this callback token")
	case errors.Is(err, engine.ErrConflict) && pointer == "":
		return conflict("this callback token was already used, or its step attempt is over; the callback changes nothing")
	}
	return err
}

// readResult reads a body that is one JSON value of any kind (a callback's
// result), within the body limit.
func readResult(r *http.Request) (json.RawMessage, error) {
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return nil, malformed("the request body is empty; send the step's result as JSON (null for none)")
	case !utf8.Valid(data):
		return nil, malformed("the request body is not valid UTF-8")
	case !json.Valid(data):
		var v any
		return nil, syntaxProblem(json.Unmarshal(data, &v))
	}
	return json.RawMessage(data), nil
}

// POST /v1/tasks/{id}/steps/{step}/complete: {result} completes a waiting
// step (permission steps:complete), e.g. an approval.
func (s *server) completeStep(w http.ResponseWriter, r *http.Request) {
	id, name, err := stepParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	obj, err := readObject(r, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	result := obj.value("result")
	if err := obj.finish(); err != nil {
		s.fail(w, r, err)
		return
	}
	if result == nil {
		result = json.RawMessage("null")
	}
	if _, err := s.eng.CompleteStep(r.Context(), id, name, result, actor(r.Context())); err != nil {
		switch {
		case errors.Is(err, engine.ErrNotFound):
			err = s.completeNotFound(r, id, name)
		case errors.Is(err, engine.ErrConflict):
			err = conflict(err.Error() + "; only a waiting step can be completed")
		default:
			err = callbackProblem(err, "/result")
		}
		s.fail(w, r, err)
		return
	}
	s.writeStep(w, r, id, name, nil)
}

// completeNotFound names what is missing: the task or its step.
func (s *server) completeNotFound(r *http.Request, id uuid.UUID, name string) error {
	if _, err := s.store.GetTask(r.Context(), id); err != nil {
		return notFound("no task " + id.String())
	}
	return notFound(fmt.Sprintf("task %s has no step %q", id, name))
}

// redactPath hides the callback token of a callback route's path in logs
// and spans: the token alone authorises the route.
func redactPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/callbacks/")
	if !ok {
		return p
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return "/v1/callbacks/{token}" + rest[i:]
	}
	return "/v1/callbacks/{token}"
}
