package lambdalocal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is the default name of the local function map, looked up in the
// directory tasker dev runs in.
const File = "lambdas.local.yaml"

// Languages a function can be written in.
const (
	Python = "python"
	Node   = "node"
)

// Function is one entry of lambdas.local.yaml: how to run the Lambda
// function a "lambda:NAME" handler names.
type Function struct {
	Name string
	// Runtime as given: "python", "python3.11", "nodejs20.x", "node", …
	Runtime string
	// Language is Python or Node, derived from Runtime.
	Language string
	// Dir is the code directory (the Lambda task root), absolute.
	Dir string
	// Handler is the Lambda Handler setting: "module.function" for
	// Python (app.handler → app.py's handler), "file.function" for Node.js.
	Handler string
	// TimeoutSeconds, when set, is the function's timeout; the step's
	// deadline applies either way.
	TimeoutSeconds int
	// MemoryMB is reported to the handler (context.memory_limit_in_mb);
	// default 128.
	MemoryMB int
	// Environment is added to the function's environment.
	Environment map[string]string
}

// Functions is the parsed lambdas.local.yaml, by function name.
type Functions map[string]Function

var (
	functionNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	pythonRe       = regexp.MustCompile(`^python(3(\.\d+)?)?$`)
	nodeRe         = regexp.MustCompile(`^node(js)?(\d+(\.x)?)?$`)
	handlerRe      = regexp.MustCompile(`^[A-Za-z0-9_./-]+\.[A-Za-z_$][A-Za-z0-9_$]*$`)
)

// MaxTimeoutSeconds is Lambda's longest function timeout.
const MaxTimeoutSeconds = 900

// LoadFile reads a local function map. Relative paths are relative to the
// file's directory. Every problem is reported at once, each naming the
// function and field.
func LoadFile(path string) (Functions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return Parse(path, data, abs)
}

type spec struct {
	Runtime     string            `yaml:"runtime"`
	Path        string            `yaml:"path"`
	Handler     string            `yaml:"handler"`
	Timeout     int               `yaml:"timeout"`
	Memory      int               `yaml:"memory"`
	Environment map[string]string `yaml:"environment"`
}

// Parse reads a local function map:
//
//	validate-order:              # the NAME of lambda:NAME
//	  runtime: python3.11        # python, python3.x, node, nodejs20.x, …
//	  path: handlers/python      # the code directory (relative to the file)
//	  handler: orders.validate   # module.function (Python), file.function (Node.js)
//	  timeout: 30                # seconds, optional
//	  memory: 256                # MB reported to the handler, optional
//	  environment: {KEY: value}  # optional
//
// source names the file in errors; base resolves relative paths.
func Parse(source string, data []byte, base string) (Functions, error) {
	var raw map[string]spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	sort.Strings(names)
	out := Functions{}
	var errs []error
	bad := func(name, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: function %q: %s: %s", source, name, field, fmt.Sprintf(format, args...)))
	}
	for _, n := range names {
		s := raw[n]
		f := Function{Name: n, Runtime: strings.TrimSpace(s.Runtime), Handler: strings.TrimSpace(s.Handler),
			TimeoutSeconds: s.Timeout, MemoryMB: s.Memory, Environment: s.Environment}
		if !functionNameRe.MatchString(n) {
			bad(n, "name", "want letters, digits, '-' and '_' (at most 64), the NAME of lambda:NAME")
		}
		rt := strings.ToLower(f.Runtime)
		switch {
		case rt == "":
			bad(n, "runtime", "missing: want python (python3.11, …) or node (nodejs20.x, …)")
		case pythonRe.MatchString(rt):
			f.Language = Python
		case nodeRe.MatchString(rt):
			f.Language = Node
		default:
			bad(n, "runtime", "%q is not supported: want python (python3.11, …) or node (nodejs20.x, …)", f.Runtime)
		}
		switch {
		case f.Handler == "":
			bad(n, "handler", "missing: want module.function, e.g. app.handler")
		case !handlerRe.MatchString(f.Handler):
			bad(n, "handler", "%q: want module.function, e.g. app.handler", f.Handler)
		}
		if s.Path == "" {
			bad(n, "path", "missing: want the function's code directory")
		} else {
			dir := s.Path
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(base, dir)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				bad(n, "path", "%s is not a directory", dir)
			}
			f.Dir = dir
		}
		if f.TimeoutSeconds < 0 || f.TimeoutSeconds > MaxTimeoutSeconds {
			bad(n, "timeout", "%d: want 1 to %d seconds (0 or absent: the step's deadline)", f.TimeoutSeconds, MaxTimeoutSeconds)
		}
		if f.MemoryMB < 0 || f.MemoryMB > 10240 {
			bad(n, "memory", "%d: want 128 to 10240 MB", f.MemoryMB)
		}
		if f.MemoryMB == 0 {
			f.MemoryMB = 128
		}
		out[n] = f
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// FunctionName returns the function a handler names: NAME for
// "lambda:NAME" or "lambda:NAME:QUALIFIER", the name in a function ARN;
// "" when the handler names no Lambda function.
func FunctionName(handler string) string {
	switch {
	case strings.HasPrefix(handler, "lambda:"):
		name, _, _ := strings.Cut(strings.TrimPrefix(handler, "lambda:"), ":")
		return name
	case strings.HasPrefix(handler, "arn:"):
		parts := strings.Split(handler, ":")
		if len(parts) >= 7 && parts[2] == "lambda" && parts[5] == "function" {
			return parts[6]
		}
	}
	return ""
}
