package template

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Defaults applied to every step unless the template says otherwise.
const (
	DefaultMaxAttempts    = 3
	DefaultBackoffBase    = time.Second
	DefaultMaxBackoff     = 300 * time.Second
	DefaultJitter         = 0.1
	DefaultTimeoutSeconds = 300
	DefaultNamespace      = "default"
	DefaultVersion        = "0.1.0"

	MaxMaxAttempts    = 100
	MaxTimeoutSeconds = 900 // a Lambda function's hard limit
)

// Built-in handlers every deployment has.
const (
	HandlerNoop = "tasker.noop"
	HandlerHTTP = "tasker.http"
)

// Template is one version of one workflow.
type Template struct {
	Namespace, Name, Version, Description string
	// ContextSchema is the JSON Schema a task context must satisfy (nil when absent).
	ContextSchema json.RawMessage
	Steps         []Step
	Triggers      []Trigger
	// Schedules start a task on each fire time (schedule.go).
	Schedules []Schedule
	// Source is the file the template was loaded from ("embedded:<name>" for
	// the templates compiled into the binary).
	Source string
	// Ignored lists the fields that were accepted but have no meaning here
	// (mostly Rails Tasker ones), e.g. "task_handler_class",
	// "steps.fetch_cart.custom_events", "environments.production".
	Ignored []string

	schema *jsonschema.Schema // compiled ContextSchema
	index  map[string]int     // step name -> index in Steps
	levels [][]string
}

// Step is one node of the workflow graph.
type Step struct {
	Name, Description string
	// Handler runs the step; see the package documentation for the naming rule.
	Handler string
	// HandlerAlias is the name the file gave when handler_aliases mapped it
	// to Handler (e.g. a Rails class "Ecommerce::ValidateOrderHandler");
	// "" otherwise.
	HandlerAlias string
	DependsOn    []string
	// Inputs names the steps whose results the handler payload carries
	// ("results"): nil means the direct parents (DependsOn); with the
	// step's inputs field it is the parents plus the steps listed, or every
	// ancestor for "inputs: all", in template order.
	Inputs []string
	// Config is handed to the handler as "config"; always a JSON object ("{}" when absent).
	Config         json.RawMessage
	Retry          RetryPolicy
	TimeoutSeconds int // default 300, at most 900
	Concurrency    int // cap on in-flight runs of this step across tasks; 0 = unlimited
	// ConcurrencyKey, from `concurrency: {limit, key}`, makes Concurrency a
	// cap per key value: a string of ${context.path} placeholders resolved
	// when a task is created (ResolveConcurrencyKey); "" = one cap for all.
	ConcurrencyKey string
	// RateLimit, from `rate_limit`, caps the step's starts per second
	// (per key value); nil = none.
	RateLimit *RateLimit
	Skippable bool
	// When, if set, must be true for the step to run; false skips it
	// (field `when`, compiled at load: condition.go).
	When *Condition
	// TriggerRule says how the parents must have ended for the step to
	// run: TriggerAllSuccess (the default), TriggerAllDone or TriggerOneFailed.
	TriggerRule string
	// Map, if set, runs the step once per item of a list (field `map`:
	// mapconfig.go).
	Map *Map
}

// RetryPolicy says how often and how late a failed step is tried again.
type RetryPolicy struct {
	MaxAttempts int           // total attempts including the first; default 3
	BackoffBase time.Duration // default 1s
	MaxBackoff  time.Duration // default 300s
	Jitter      float64       // fraction, 0..1; default 0.1
}

// DefaultRetry is the policy of a step that says nothing about retries.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{
		MaxAttempts: DefaultMaxAttempts,
		BackoffBase: DefaultBackoffBase,
		MaxBackoff:  DefaultMaxBackoff,
		Jitter:      DefaultJitter,
	}
}

// Trigger starts a task of its template when a matching event arrives.
type Trigger struct {
	Type string // "s3" or "eventbridge"

	// S3: the object's bucket must equal Bucket and its key start with
	// Prefix and end with Suffix (both optional).
	Bucket, Prefix, Suffix string

	// EventBridge: the event's source must be one of Source and its
	// detail-type one of DetailType (each empty = any); Detail is an optional
	// EventBridge-style pattern matched against the event's detail.
	Source, DetailType []string
	Detail             map[string]any

	// Context maps a context field to a path into the event: "$.detail.order_id"
	// for EventBridge, "$.bucket", "$.key" (and other S3 record fields) for S3.
	Context map[string]string
}

// Trigger types.
const (
	TriggerS3          = "s3"
	TriggerEventBridge = "eventbridge"
)

// HandlerSet tells which handler names are registered (Go handlers).
type HandlerSet interface {
	Has(name string) bool
}

// Options tune loading.
type Options struct {
	// Env selects the `environments:` overrides to apply. Default: $TASKER_ENV,
	// else "development".
	Env string
	// Handlers, when not nil, is checked for every handler that is neither a
	// built-in nor a Lambda function.
	Handlers HandlerSet
	// HandlerAliases maps handler names as written in templates (e.g. Rails
	// class names) to the handlers that run them, for every template; a
	// template's own handler_aliases take precedence. LoadDir and LoadFS
	// also read the file handler_aliases.yaml at the root they load.
	HandlerAliases map[string]string
	// Limits bound the cost of loading one file (zero fields: DefaultLimits).
	Limits Limits
}

func (o Options) env() string {
	if o.Env != "" {
		return o.Env
	}
	if e := os.Getenv("TASKER_ENV"); e != "" {
		return e
	}
	return "development"
}

// Key is "namespace/name@version".
func (t *Template) Key() string {
	return t.Namespace + "/" + t.Name + "@" + t.Version
}

// Step returns the named step.
func (t *Template) Step(name string) (*Step, bool) {
	if t.index != nil {
		i, ok := t.index[name]
		if !ok {
			return nil, false
		}
		return &t.Steps[i], true
	}
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return &t.Steps[i], true
		}
	}
	return nil, false
}

// Levels groups the steps by dependency depth: level 0 holds the steps
// without dependencies, a step's level is one more than its deepest parent.
// Steps of one level can run in parallel; within a level names are in
// template order. The result is a copy.
func (t *Template) Levels() [][]string {
	lv := t.levels
	if lv == nil {
		lv, _ = computeLevels(t.Steps)
	}
	out := make([][]string, len(lv))
	for i, l := range lv {
		out[i] = append([]string(nil), l...)
	}
	return out
}

// computeLevels runs Kahn's algorithm by depth. ok is false when the graph
// has a cycle or an unknown dependency (the steps involved are left out).
func computeLevels(steps []Step) (levels [][]string, ok bool) {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	depth := make([]int, len(steps))
	indeg := make([]int, len(steps))
	children := make([][]int, len(steps))
	ok = true
	for i, s := range steps {
		for _, d := range s.DependsOn {
			j, found := index[d]
			if !found || j == i {
				ok = false
				continue
			}
			indeg[i]++
			children[j] = append(children[j], i)
		}
	}
	queue := []int{}
	for i := range steps {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	done := 0
	maxDepth := -1
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		done++
		if depth[i] > maxDepth {
			maxDepth = depth[i]
		}
		for _, c := range children[i] {
			if depth[i]+1 > depth[c] {
				depth[c] = depth[i] + 1
			}
			indeg[c]--
			if indeg[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	if done != len(steps) {
		ok = false
	}
	levels = make([][]string, maxDepth+1)
	for i, s := range steps {
		if indeg[i] == 0 {
			levels[depth[i]] = append(levels[depth[i]], s.Name)
		}
	}
	return levels, ok
}

// IsBuiltin reports whether handler is one of the built-in handlers.
func IsBuiltin(handler string) bool {
	return handler == HandlerNoop || handler == HandlerHTTP || handler == HandlerWait || handler == HandlerCallback ||
		handler == HandlerWorkflow
}

// IsLambda reports whether handler names a Lambda function ("arn:…" or "lambda:<name>").
func IsLambda(handler string) bool {
	return strings.HasPrefix(handler, "arn:") || strings.HasPrefix(handler, "lambda:")
}

// LambdaFunction returns the function name or ARN to invoke for a Lambda
// handler ("lambda:my-fn" -> "my-fn"; an ARN is returned as is).
func LambdaFunction(handler string) (string, bool) {
	switch {
	case strings.HasPrefix(handler, "lambda:"):
		return strings.TrimPrefix(handler, "lambda:"), true
	case strings.HasPrefix(handler, "arn:"):
		return handler, true
	}
	return "", false
}

var (
	nameRe       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	lambdaNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$`)
)

const maxNameLen = 128

// ValidName reports whether s may be a namespace, workflow or step name:
// letters, digits, '_', '.', '-', not starting with '.' or '-', no "..",
// at most 128 characters — safe as a URL path segment.
func ValidName(s string) bool {
	return len(s) <= maxNameLen && nameRe.MatchString(s) && !strings.Contains(s, "..")
}
