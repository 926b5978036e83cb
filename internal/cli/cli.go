// Package cli holds what the tasker subcommands share: the API flags
// (--url, --token, --json) and the client they build, error reporting,
// flag parsing that accepts flags after positional arguments, and JSON
// flag values. The subcommands live in the packages below it; cmd/tasker
// only dispatches to them.
//
// Import rules: cli imports apiclient and the standard library. Of its
// subpackages, tasks, token, validate and scaffold reach no server package
// (cmd/tasker/imports_test.go); dev, migrate and bench run parts of the
// server in-process.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/taskerhq/tasker/internal/apiclient"
)

// Command is one tasker subcommand: it runs with the arguments after its
// name and returns the exit status (0 ok, 1 failed, 2 usage error).
type Command struct {
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// APIFlags are the flags every API command takes: --url, --token, --json.
type APIFlags struct {
	URL   string
	Token string
	JSON  bool
}

// AddAPIFlags registers --url, --token and --json on fs. The token's
// default is resolved after parsing (see Client) so --help never prints it.
func AddAPIFlags(fs *flag.FlagSet) *APIFlags {
	f := &APIFlags{}
	fs.StringVar(&f.URL, "url", "", "API base URL (default $TASKER_URL, else "+apiclient.DefaultURL+")")
	fs.StringVar(&f.Token, "token", "", "bearer token (default $TASKER_TOKEN; mint one with `tasker token`)")
	fs.BoolVar(&f.JSON, "json", false, "print the API's JSON instead of text (for scripts)")
	return f
}

// Client builds the API client the flags describe: --url, else
// $TASKER_URL, else apiclient.DefaultURL; --token, else $TASKER_TOKEN.
func (f *APIFlags) Client() (*apiclient.Client, error) {
	base := f.URL
	if base == "" {
		base = os.Getenv("TASKER_URL")
	}
	if base == "" {
		base = apiclient.DefaultURL
	}
	tok := f.Token
	if tok == "" {
		tok = os.Getenv("TASKER_TOKEN")
	}
	c, err := apiclient.New(base, tok)
	if err != nil {
		return nil, fmt.Errorf("--url %w", err)
	}
	return c, nil
}

// ReportError writes err to stderr for command cmd and returns the exit
// status (1). Problems are rendered as title, detail and one line per field
// error; with asJSON the problem document itself is written.
func ReportError(stderr io.Writer, cmd string, err error, asJSON bool) int {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		if asJSON && len(bytes.TrimSpace(ae.Body)) > 0 {
			stderr.Write(bytes.TrimRight(ae.Body, "\n"))
			fmt.Fprintln(stderr)
			return 1
		}
		fmt.Fprintf(stderr, "tasker %s: %s\n", cmd, ae.Error())
		if p := ae.Problem; p != nil {
			for _, fe := range p.Errors {
				where := fe.Pointer
				switch {
				case where != "":
				case fe.Parameter != "":
					where = "parameter " + fe.Parameter
				case fe.Header != "":
					where = "header " + fe.Header
				default:
					where = "-"
				}
				if (len(p.Errors) == 1 && p.Detail == fe.Detail) || p.Detail == where+": "+fe.Detail {
					continue // already said
				}
				fmt.Fprintf(stderr, "  %s: %s\n", where, fe.Detail)
			}
			if p.Permission != "" {
				fmt.Fprintf(stderr, "  (mint a token with it: tasker token --scope %q)\n", p.Permission)
			}
			if ae.Status == http.StatusUnauthorized {
				fmt.Fprintln(stderr, "  (pass --token or set TASKER_TOKEN; `tasker token` mints a local one)")
			}
			if ae.Status >= 500 && p.CorrelationID != "" {
				fmt.Fprintf(stderr, "  correlation id: %s\n", p.CorrelationID)
			}
		}
		return 1
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "tasker %s: interrupted\n", cmd)
		return 1
	}
	fmt.Fprintf(stderr, "tasker %s: %v\n", cmd, err)
	return 1
}

// ParseInterleaved parses args with fs, accepting flags before and after
// positional arguments ("--" ends the flags). It returns the positional
// arguments, or an exit code (0 after --help, 2 for a usage error).
func ParseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		rest = fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		// flag.Parse stops at "--" having consumed it, or at a positional.
		if consumedDashDash(args, rest) {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
}

// consumedDashDash reports whether the flag set stopped because of "--":
// the argument just before rest in args is "--".
func consumedDashDash(args, rest []string) bool {
	i := len(args) - len(rest) - 1
	return i >= 0 && args[i] == "--"
}

// ReadJSONArg reads a JSON flag value: inline JSON, @file, or @- for stdin.
func ReadJSONArg(name, v string) (json.RawMessage, error) {
	data := []byte(v)
	if strings.HasPrefix(v, "@") {
		var err error
		if v == "@-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(v[1:])
		}
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
	}
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		var x any
		err := json.Unmarshal(data, &x)
		return nil, fmt.Errorf("--%s: not valid JSON: %v", name, err)
	}
	return json.RawMessage(data), nil
}

// UsageFunc prints a command's usage text followed by its flags.
func UsageFunc(fs *flag.FlagSet, text string) func() {
	return func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
}

// WriteRaw writes an API answer as received, ending in one newline.
func WriteRaw(w io.Writer, raw []byte) {
	w.Write([]byte(strings.TrimRight(string(raw), "\n") + "\n"))
}
