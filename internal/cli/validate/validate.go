// Package validate is `tasker validate`: it loads workflow templates and
// reports what is wrong with them.
package validate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/template"
)

const validateUsage = `usage: tasker validate [--verbose] [--env ENV] [DIR|FILE]...

Validates workflow templates (default: the templates directory). A DIR is
loaded as one set: every *.yaml/*.yml under it, and two files defining the
same namespace/name@version are an error. Each FILE is validated on its own.
Prints one line per template; errors go to stderr, one per line, and make
the exit status 1.

flags:
`

// Run is `tasker validate`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("verbose", false, "also list the source file and the fields accepted but ignored")
	env := fs.String("env", "", "environment whose environments: overrides apply (default $TASKER_ENV, else development)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), validateUsage)
		fs.PrintDefaults()
	}
	// Accept flags before and after the paths.
	var paths []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		paths = append(paths, rest[0])
		rest = rest[1:]
	}
	if len(paths) == 0 {
		paths = []string{"templates"}
	}
	opts := template.Options{Env: *env}

	failed := false
	report := func(err error) {
		failed = true
		var es template.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e.Error())
			}
			return
		}
		fmt.Fprintln(stderr, err)
	}
	for _, p := range paths {
		if ctx.Err() != nil {
			report(ctx.Err())
			break
		}
		info, err := os.Stat(p)
		if err != nil {
			report(err)
			continue
		}
		if info.IsDir() {
			set, err := template.LoadDir(p, opts)
			if err != nil {
				report(err)
			}
			for _, t := range set.List() {
				printTemplate(stdout, t, *verbose)
			}
			continue
		}
		t, err := template.LoadFile(p, opts)
		if err != nil {
			report(err)
			continue
		}
		printTemplate(stdout, t, *verbose)
	}
	if failed {
		return 1
	}
	return 0
}

func printTemplate(w io.Writer, t *template.Template, verbose bool) {
	n := len(t.Steps)
	unit := "steps"
	if n == 1 {
		unit = "step"
	}
	levels := make([]string, 0, len(t.Steps))
	for _, l := range t.Levels() {
		levels = append(levels, "["+strings.Join(l, " ")+"]")
	}
	fmt.Fprintf(w, "%s  %d %s  levels: %s\n", t.Key(), n, unit, strings.Join(levels, " "))
	for _, s := range t.Steps {
		if cf := controlFlow(s); cf != "" {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, cf)
		}
	}
	if verbose {
		fmt.Fprintf(w, "  source: %s\n", t.Source)
		if len(t.Ignored) > 0 {
			fmt.Fprintf(w, "  ignored: %s\n", strings.Join(t.Ignored, ", "))
		}
		for i, sc := range t.Schedules {
			fmt.Fprintf(w, "  schedules[%d]: %s, catch_up %s\n", i, sc.Spec, sc.CatchUp)
		}
	}
}

// controlFlow describes a step's control flow (docs/control-flow.md) in
// one line: its wait or callback, its condition and its trigger rule; ""
// for a plain step.
func controlFlow(s template.Step) string {
	var parts []string
	switch s.Handler {
	case template.HandlerWait:
		if c, err := template.ParseWaitConfig(s.Config); err == nil {
			if c.Until != "" {
				parts = append(parts, "wait until "+c.Until)
			} else {
				parts = append(parts, "wait "+c.Seconds+"s")
			}
		}
	case template.HandlerCallback:
		if c, err := template.ParseCallbackConfig(s.Config); err == nil {
			cb := "callback, timeout " + (time.Duration(c.TimeoutSeconds) * time.Second).String()
			if len(c.Notify) > 0 {
				cb += ", notify"
			}
			parts = append(parts, cb)
		}
	}
	if s.When != nil {
		parts = append(parts, "when "+s.When.Expr)
	}
	if s.TriggerRule != "" && s.TriggerRule != template.TriggerAllSuccess {
		parts = append(parts, "trigger_rule "+s.TriggerRule)
	}
	if rl := s.RateLimit; rl != nil {
		r := fmt.Sprintf("rate_limit %s/s burst %d", strconv.FormatFloat(rl.PerSecond, 'g', -1, 64), rl.Burst)
		if rl.Key != "" {
			r += " per " + rl.Key
		}
		parts = append(parts, r)
	}
	return strings.Join(parts, "; ")
}
