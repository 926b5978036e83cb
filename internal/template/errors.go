package template

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is the one error an unknown workflow or version is: Set.Get
// returns a *NotFoundError, which errors.Is matches to it. The REST and
// GraphQL APIs check it with errors.Is and answer with its Detail, each in
// its own shape.
var ErrNotFound = errors.New("template not found")

// NotFoundError says what Set.Get was asked for and found nothing of.
type NotFoundError struct {
	Namespace, Name string
	// Version is the version asked for; "" asked for the highest.
	Version string
	// Versions are the workflow's versions there are, ascending; none when
	// no workflow has that namespace and name.
	Versions []string
}

// Is makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func (e *NotFoundError) Error() string {
	if len(e.Versions) == 0 || e.Version == "" {
		return fmt.Sprintf("%v: %s/%s", ErrNotFound, e.Namespace, e.Name)
	}
	return fmt.Sprintf("%v: %s/%s@%s (versions: %s)", ErrNotFound, e.Namespace, e.Name, e.Version, strings.Join(e.Versions, ", "))
}

// WorkflowMissing reports whether no version of the workflow exists (the
// name is wrong, not the version).
func (e *NotFoundError) WorkflowMissing() bool { return len(e.Versions) == 0 }

// Detail is the sentence an API answers with: "no workflow shop/order", or
// "no version 3.0.0 of shop/order (versions: 1.0.0, 2.0.0)".
func (e *NotFoundError) Detail() string {
	if e.WorkflowMissing() {
		return fmt.Sprintf("no workflow %s/%s", e.Namespace, e.Name)
	}
	return fmt.Sprintf("no version %s of %s/%s (versions: %s)", e.Version, e.Namespace, e.Name, strings.Join(e.Versions, ", "))
}

// NotFoundDetail returns the Detail of the *NotFoundError in err's chain,
// or, for another error matching ErrNotFound, a sentence naming the
// workflow asked for (if given); ok is false when err is not ErrNotFound.
func NotFoundDetail(err error, namespace, name string) (detail string, workflowMissing, ok bool) {
	if !errors.Is(err, ErrNotFound) {
		return "", false, false
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nf.Detail(), nf.WorkflowMissing(), true
	}
	if namespace == "" && name == "" {
		return "no such workflow", true, true
	}
	return fmt.Sprintf("no workflow %s/%s", namespace, name), true, true
}

// ErrUnknownHandler is wrapped by the problem reported for a handler that
// is not registered (Options.Handlers), not a built-in, not a Lambda
// function and not mapped by handler_aliases. LoadDir and LoadFS gather
// them into one problem naming every unmapped handler.
var ErrUnknownHandler = errors.New("unknown handler")

// Error is one problem found while loading a template. Its message names the
// file, the step and the field involved, omitting the parts that do not apply:
//
//	order.yaml:12: step "ship": field "depends_on": unknown step "pack"
type Error struct {
	File  string // the template's Source
	Line  int    // 1-based line in File, 0 when unknown
	Step  string // step name, "" for template-level problems
	Field string // field as spelled in the file, e.g. "depends_on_step" or "retry.jitter"
	Msg   string
	// Err, when set, is the sentinel this problem is an instance of (e.g.
	// ErrBudget), for errors.Is.
	Err error
	// Handler is the handler name of an ErrUnknownHandler problem.
	Handler string
}

// Unwrap returns the sentinel the problem is an instance of, if any.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		if e.Line > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", e.File, e.Line))
		} else {
			parts = append(parts, e.File)
		}
	}
	if e.Step != "" {
		parts = append(parts, fmt.Sprintf("step %q", e.Step))
	}
	if e.Field != "" {
		parts = append(parts, fmt.Sprintf("field %q", e.Field))
	}
	parts = append(parts, e.Msg)
	return strings.Join(parts, ": ")
}

// Errors is a list of problems; Parse, LoadFile, LoadDir, LoadFS and NewSet
// report every problem they find, not just the first.
type Errors []*Error

func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "no errors"
	case 1:
		return es[0].Error()
	}
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("%d template errors:\n%s", len(es), strings.Join(lines, "\n"))
}

// Unwrap lets errors.As find the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when it is empty (avoids the typed-nil trap).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// ContextError reports why a task context does not match a template's
// context_schema: one Violation per failing value.
type ContextError struct {
	Violations []Violation
}

// Violation is one schema failure. Pointer is the RFC 6901 JSON pointer of the
// offending value in the context ("" is the whole context); for a missing
// required property it points at the property that should be there.
type Violation struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (e *ContextError) Error() string {
	if len(e.Violations) == 0 {
		return "context is invalid"
	}
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		p := v.Pointer
		if p == "" {
			p = "(context)"
		}
		parts[i] = p + ": " + v.Message
	}
	return "context does not match the template's context_schema: " + strings.Join(parts, "; ")
}
