package template

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// HandlerWorkflow starts a child task of config.namespace/config.name
// (config.version: the highest when empty) with config.context, whose
// string values may hold ${context.path} placeholders of the parent's
// context; the step completes with the child's step results by step name
// (docs/architecture.md, "Child workflows").
const HandlerWorkflow = "tasker.workflow"

// WorkflowConfig is the config of a tasker.workflow step.
type WorkflowConfig struct {
	Namespace string
	Name      string
	Version   string
	Context   map[string]any
}

// ParseWorkflowConfig reads a tasker.workflow config.
func ParseWorkflowConfig(config json.RawMessage) (WorkflowConfig, error) {
	var raw map[string]any
	if err := json.Unmarshal(config, &raw); err != nil {
		return WorkflowConfig{}, fmt.Errorf("config: %w", err)
	}
	if pr := workflowConfigProblems(raw); len(pr) > 0 {
		return WorkflowConfig{}, fmt.Errorf("config.%s: %s", pr[0].field, pr[0].msg)
	}
	c := WorkflowConfig{Context: map[string]any{}}
	c.Namespace, _ = raw["namespace"].(string)
	c.Name, _ = raw["name"].(string)
	c.Version, _ = raw["version"].(string)
	if m, ok := raw["context"].(map[string]any); ok {
		c.Context = m
	}
	return c, nil
}

// ChildContext is the child's context: config.context with every
// ${context.path} placeholder of a string value replaced from the parent's
// context. A whole-value placeholder keeps the JSON type of what it names.
func (c WorkflowConfig) ChildContext(parent json.RawMessage) (json.RawMessage, error) {
	var pc map[string]any
	if len(parent) > 0 {
		if err := json.Unmarshal(parent, &pc); err != nil {
			return nil, fmt.Errorf("parent context: %w", err)
		}
	}
	var subst func(v any) (any, error)
	subst = func(v any) (any, error) {
		switch x := v.(type) {
		case string:
			if m := waitPlaceholder.FindStringSubmatch(x); m != nil && m[0] == x {
				val, ok := lookupPath(pc, m[1])
				if !ok {
					return nil, fmt.Errorf("config.context: ${context.%s} is not in the task context", m[1])
				}
				return val, nil
			}
			var err error
			out := waitPlaceholder.ReplaceAllStringFunc(x, func(ph string) string {
				p := waitPlaceholder.FindStringSubmatch(ph)[1]
				val, ok := lookupPath(pc, p)
				if !ok {
					err = fmt.Errorf("config.context: ${context.%s} is not in the task context", p)
					return ""
				}
				if s, ok := val.(string); ok {
					return s
				}
				b, _ := json.Marshal(val)
				return string(b)
			})
			return out, err
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				r, err := subst(e)
				if err != nil {
					return nil, err
				}
				out[k] = r
			}
			return out, nil
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				r, err := subst(e)
				if err != nil {
					return nil, err
				}
				out[i] = r
			}
			return out, nil
		}
		return v, nil
	}
	v, err := subst(map[string]any(c.Context))
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("config.context: %w", err)
	}
	return b, nil
}

func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// workflowConfigProblems checks a tasker.workflow config's shape; whether
// the child exists is checked against the Set (checkChildren).
func workflowConfigProblems(raw map[string]any) []problem {
	var out []problem
	for _, f := range []string{"namespace", "name"} {
		if s, _ := raw[f].(string); strings.TrimSpace(s) == "" {
			out = append(out, problem{f, fmt.Sprintf("handler %s needs config.%s (a string)", HandlerWorkflow, f)})
		}
	}
	if v, ok := raw["version"]; ok {
		if _, s := v.(string); !s {
			out = append(out, problem{"version", "must be a string"})
		}
	}
	if v, ok := raw["context"]; ok {
		if _, m := v.(map[string]any); !m {
			out = append(out, problem{"context", "must be an object"})
		}
	}
	for k := range raw {
		switch k {
		case "namespace", "name", "version", "context":
		default:
			out = append(out, problem{k, fmt.Sprintf("unknown field of a %s config: the fields are namespace, name, version and context", HandlerWorkflow)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].field < out[j].field })
	return out
}

// checkChildren refuses a tasker.workflow step whose child is not in the
// set, and a template that (transitively) starts itself.
func checkChildren(s *Set) Errors {
	var errs Errors
	childOf := func(st Step) (*Template, WorkflowConfig, error) {
		c, err := ParseWorkflowConfig(st.Config)
		if err != nil {
			return nil, c, err
		}
		t, err := s.Get(c.Namespace, c.Name, c.Version)
		return t, c, err
	}
	for _, t := range s.all {
		for _, st := range t.Steps {
			if st.Handler != HandlerWorkflow {
				continue
			}
			if _, c, err := childOf(st); err != nil {
				ref := c.Namespace + "/" + c.Name
				if c.Version != "" {
					ref += "@" + c.Version
				}
				errs = append(errs, &Error{File: t.Source, Step: st.Name, Field: "config.name",
					Msg: fmt.Sprintf("child workflow %s is not loaded: %v", ref, err)})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// A depth-first walk of the "starts" graph finds a template that
	// reaches itself.
	const (
		white = iota
		grey
		black
	)
	color := map[*Template]int{}
	var visit func(t *Template) (*Template, string)
	visit = func(t *Template) (*Template, string) {
		color[t] = grey
		defer func() { color[t] = black }()
		for _, st := range t.Steps {
			if st.Handler != HandlerWorkflow {
				continue
			}
			c, _, _ := childOf(st)
			switch color[c] {
			case grey:
				return t, st.Name
			case white:
				if bad, step := visit(c); bad != nil {
					return bad, step
				}
			}
		}
		return nil, ""
	}
	for _, t := range s.all {
		if color[t] == white {
			if bad, step := visit(t); bad != nil {
				errs = append(errs, &Error{File: bad.Source, Step: step, Field: "config.name",
					Msg: fmt.Sprintf("template %s starts itself through child workflows (a cycle of tasker.workflow steps)", bad.Key())})
			}
		}
	}
	return errs
}
