// Command aws-smoke deploys Tasker into a real AWS account, runs the
// example order workflow through the HTTP API, checks its result and the
// stack's alarms, and deletes the stack (docs/deploy.md, "Smoke test in a
// real account"):
//
//	go run ./scripts/aws-smoke --stack tasker-smoke --region eu-west-1 \
//	  --parameter DatabaseUrl='postgres://…' [--parameter Name=Value …] [--keep]
//
// It runs `sam build`, `sam deploy`, `aws cloudformation describe-stacks`,
// `aws secretsmanager get-secret-value`, `aws cloudwatch describe-alarms`
// and `sam delete` with the caller's credentials. It exits 0 only when
// every check passed; the stack is deleted either way unless --keep.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/domain"
)

// options are the command line.
type options struct {
	Stack, Region, Repo string
	Params              []string // Name=Value
	Keep                bool
	Timeout             time.Duration
}

type paramFlag struct{ p *[]string }

func (f paramFlag) String() string { return "" }
func (f paramFlag) Set(v string) error {
	name, _, ok := strings.Cut(v, "=")
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("%q is not Name=Value", v)
	}
	*f.p = append(*f.p, v)
	return nil
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("aws-smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Stack, "stack", "", "name of the stack to create (required; deleted at the end)")
	fs.StringVar(&o.Region, "region", "", "AWS region (required)")
	fs.StringVar(&o.Repo, "repo", ".", "repository root (template.yaml)")
	fs.Var(paramFlag{&o.Params}, "parameter", "a template parameter Name=Value (repeatable)")
	fs.BoolVar(&o.Keep, "keep", false, "leave the stack for inspection")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long the workflow may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.Stack == "":
		return o, errors.New("--stack is required")
	case o.Region == "":
		return o, errors.New("--region is required")
	case o.Timeout <= 0:
		return o, errors.New("--timeout must be positive")
	}
	return o, nil
}

// deployArgs is the `sam deploy` command line: no prompts, the stack's
// own capabilities, and a DeployId so the migration runs.
func deployArgs(o options, deployID string) []string {
	params := append([]string{"DeployId=" + deployID}, o.Params...)
	args := []string{"deploy", "--stack-name", o.Stack, "--region", o.Region,
		"--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
		"--resolve-s3", "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--parameter-overrides"}
	return append(args, params...)
}

// stackOutputs reads `aws cloudformation describe-stacks --output json`.
func stackOutputs(describe []byte) (map[string]string, error) {
	var d struct {
		Stacks []struct {
			StackStatus string
			Outputs     []struct{ OutputKey, OutputValue string }
		}
	}
	if err := json.Unmarshal(describe, &d); err != nil {
		return nil, fmt.Errorf("describe-stacks output: %w", err)
	}
	if len(d.Stacks) != 1 {
		return nil, fmt.Errorf("describe-stacks returned %d stacks", len(d.Stacks))
	}
	if s := d.Stacks[0].StackStatus; s != "CREATE_COMPLETE" && s != "UPDATE_COMPLETE" {
		return nil, fmt.Errorf("stack status %s", s)
	}
	out := map[string]string{}
	for _, o := range d.Stacks[0].Outputs {
		out[o.OutputKey] = o.OutputValue
	}
	for _, k := range []string{"ApiUrl", "ApiTokenSecretArn"} {
		if out[k] == "" {
			return nil, fmt.Errorf("the stack has no %s output (the smoke test needs the generated API secret: leave AuthJwksUrl empty)", k)
		}
	}
	return out, nil
}

// alarmsFiring reads `aws cloudwatch describe-alarms --output json` and
// returns the stack's alarms in ALARM, and how many alarms it saw.
func alarmsFiring(describe []byte, stack string) (firing []string, seen int, err error) {
	var d struct {
		MetricAlarms []struct{ AlarmName, StateValue, StateReason string }
	}
	if err := json.Unmarshal(describe, &d); err != nil {
		return nil, 0, fmt.Errorf("describe-alarms output: %w", err)
	}
	for _, a := range d.MetricAlarms {
		if !strings.HasPrefix(a.AlarmName, stack+"-") {
			continue
		}
		seen++
		if a.StateValue == "ALARM" {
			firing = append(firing, a.AlarmName+": "+a.StateReason)
		}
	}
	sort.Strings(firing)
	return firing, seen, nil
}

// token signs an API token with the stack's generated HS256 secret.
func token(secret string, now time.Time) (string, error) {
	return auth.SignHS256([]byte(strings.TrimSpace(secret)), map[string]any{
		"sub": "aws-smoke", "scope": "tasks:* steps:*", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}

// runWorkflow creates the example order task through the API and waits
// for it to finish; it fails unless the task and every step completed.
func runWorkflow(ctx context.Context, c *apiclient.Client, order json.RawMessage, poll time.Duration) (string, error) {
	task, body, status, err := c.CreateTask(ctx, map[string]any{"namespace": "ecommerce", "name": "process_order", "context": order})
	if err != nil {
		return "", fmt.Errorf("create task: %w", err)
	}
	if status != 201 && status != 200 {
		return "", fmt.Errorf("create task: HTTP %d: %s", status, body)
	}
	for {
		t, _, err := c.Task(ctx, task.ID)
		if err != nil {
			return task.ID, fmt.Errorf("task %s: %w", task.ID, err)
		}
		if domain.TaskStatus(t.Status).Terminal() {
			if t.Status != string(domain.TaskComplete) {
				return task.ID, fmt.Errorf("task %s ended %s", task.ID, t.Status)
			}
			if len(t.Steps) == 0 {
				return task.ID, fmt.Errorf("task %s has no steps", task.ID)
			}
			for _, s := range t.Steps {
				if s.Status != "complete" && s.Status != "skipped" {
					return task.ID, fmt.Errorf("task %s complete but step %s is %s", task.ID, s.Name, s.Status)
				}
			}
			return task.ID, nil
		}
		select {
		case <-ctx.Done():
			return task.ID, fmt.Errorf("task %s still %s: %w", task.ID, t.Status, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// runner runs the sam and aws commands.
type runner struct{ stderr io.Writer }

func (r runner) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = r.stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w", name, args[0], err)
	}
	return out.Bytes(), nil
}

func smoke(ctx context.Context, o options, r runner, log io.Writer) (err error) {
	order, err := os.ReadFile(filepath.Join(o.Repo, "examples", "order.json"))
	if err != nil {
		return err
	}
	if _, err := r.run(ctx, o.Repo, "sam", "build"); err != nil {
		return err
	}
	defer func() {
		if o.Keep {
			fmt.Fprintf(log, "aws-smoke: keeping stack %s\n", o.Stack)
			return
		}
		// A fresh context: the stack goes even when ctx ended.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		if _, derr := r.run(dctx, o.Repo, "sam", "delete", "--stack-name", o.Stack, "--region", o.Region, "--no-prompts"); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the stack (delete it by hand): %w", derr))
		}
	}()
	if _, err := r.run(ctx, o.Repo, "sam", deployArgs(o, time.Now().UTC().Format("20060102T150405Z"))...); err != nil {
		return err
	}
	desc, err := r.run(ctx, o.Repo, "aws", "cloudformation", "describe-stacks", "--stack-name", o.Stack, "--region", o.Region, "--output", "json")
	if err != nil {
		return err
	}
	outs, err := stackOutputs(desc)
	if err != nil {
		return err
	}
	secret, err := r.run(ctx, o.Repo, "aws", "secretsmanager", "get-secret-value", "--secret-id", outs["ApiTokenSecretArn"],
		"--region", o.Region, "--query", "SecretString", "--output", "text")
	if err != nil {
		return err
	}
	tok, err := token(string(secret), time.Now())
	if err != nil {
		return err
	}
	c, err := apiclient.New(outs["ApiUrl"], tok, apiclient.WithUserAgent("tasker-aws-smoke"))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	id, err := runWorkflow(wctx, c, order, 5*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "aws-smoke: task %s complete\n", id)
	alarms, err := r.run(ctx, o.Repo, "aws", "cloudwatch", "describe-alarms", "--alarm-name-prefix", o.Stack+"-", "--region", o.Region, "--output", "json")
	if err != nil {
		return err
	}
	firing, seen, err := alarmsFiring(alarms, o.Stack)
	if err != nil {
		return err
	}
	if seen == 0 {
		return errors.New("the stack has no alarms")
	}
	if len(firing) > 0 {
		return fmt.Errorf("alarms in ALARM: %s", strings.Join(firing, "; "))
	}
	fmt.Fprintf(log, "aws-smoke: %d alarms, none in ALARM\n", seen)
	return nil
}

func main() {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "aws-smoke:", err)
		}
		os.Exit(2)
	}
	if err := smoke(context.Background(), o, runner{stderr: os.Stderr}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "aws-smoke: FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("aws-smoke: OK")
}
