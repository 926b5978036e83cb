package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// defaultAPIURL is where `tasker dev` listens by default.
const defaultAPIURL = "http://127.0.0.1:8080"

// apiFlags are the flags every API command takes: --url, --token, --json.
type apiFlags struct {
	url   string
	token string
	json  bool
}

// addAPIFlags registers --url, --token and --json on fs. The token's
// default is resolved after parsing (see client) so --help never prints it.
func addAPIFlags(fs *flag.FlagSet) *apiFlags {
	f := &apiFlags{}
	fs.StringVar(&f.url, "url", "", "API base URL (default $TASKER_URL, else "+defaultAPIURL+")")
	fs.StringVar(&f.token, "token", "", "bearer token (default $TASKER_TOKEN; mint one with `tasker token`)")
	fs.BoolVar(&f.json, "json", false, "print the API's JSON instead of text (for scripts)")
	return f
}

// client builds the API client the flags describe.
func (f *apiFlags) client() (*client, error) {
	base := f.url
	if base == "" {
		base = os.Getenv("TASKER_URL")
	}
	if base == "" {
		base = defaultAPIURL
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http(s) URL", base)
	}
	tok := f.token
	if tok == "" {
		tok = os.Getenv("TASKER_TOKEN")
	}
	return &client{
		base:  strings.TrimRight(u.String(), "/"),
		token: strings.TrimSpace(tok),
		hc:    &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// client is a small HTTP client of the Tasker API: it adds the bearer token
// and turns problem+json answers into *apiError.
type client struct {
	base  string
	token string
	hc    *http.Client
}

// apiError is a non-2xx answer. Problem is set when the body was a
// problem+json document.
type apiError struct {
	Status  int
	Problem *problem
	Body    []byte
}

// problem mirrors the API's RFC 9457 problem document.
type problem struct {
	Type          string       `json:"type"`
	Title         string       `json:"title"`
	Status        int          `json:"status"`
	Detail        string       `json:"detail"`
	Instance      string       `json:"instance"`
	CorrelationID string       `json:"correlation_id"`
	Permission    string       `json:"permission"`
	Errors        []fieldError `json:"errors"`
}

type fieldError struct {
	Pointer   string `json:"pointer"`
	Parameter string `json:"parameter"`
	Header    string `json:"header"`
	Detail    string `json:"detail"`
}

func (e *apiError) Error() string {
	if p := e.Problem; p != nil {
		msg := p.Title
		if msg == "" {
			msg = http.StatusText(e.Status)
		}
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		return msg
	}
	body := strings.TrimSpace(string(e.Body))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	if body == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), body)
}

// connError is a request that got no HTTP answer.
type connError struct {
	base string
	err  error
}

func (e *connError) Error() string {
	return fmt.Sprintf("cannot reach the Tasker API at %s (is `tasker dev` running? set --url or TASKER_URL): %v", e.base, e.err)
}

func (e *connError) Unwrap() error { return e.err }

// do sends one request and returns the body of a 2xx answer. body, when
// not nil, is sent as JSON (json.RawMessage as is).
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		var b []byte
		if raw, ok := body.(json.RawMessage); ok {
			b = raw
		} else {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, 0, err
			}
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "tasker-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, &connError{base: c.base, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.StatusCode, &connError{base: c.base, err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &apiError{Status: resp.StatusCode, Body: data}
		var p problem
		if json.Unmarshal(data, &p) == nil && (p.Title != "" || p.Detail != "" || p.Type != "") {
			ae.Problem = &p
		}
		return nil, resp.StatusCode, ae
	}
	return data, resp.StatusCode, nil
}

// getJSON fetches path and decodes it into dst; it returns the raw body.
func (c *client) getJSON(ctx context.Context, path string, query url.Values, dst any) ([]byte, error) {
	data, _, err := c.do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	if dst != nil {
		if err := json.Unmarshal(data, dst); err != nil {
			return nil, fmt.Errorf("GET %s: unexpected response: %w", path, err)
		}
	}
	return data, nil
}

// postJSON posts body to path and decodes the answer into dst; it returns
// the raw answer and the status code.
func (c *client) postJSON(ctx context.Context, path string, body, dst any) ([]byte, int, error) {
	data, code, err := c.do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return nil, code, err
	}
	if dst != nil {
		if err := json.Unmarshal(data, dst); err != nil {
			return nil, code, fmt.Errorf("POST %s: unexpected response: %w", path, err)
		}
	}
	return data, code, nil
}

// reportError writes err to stderr for command cmd and returns the exit
// status (1). Problems are rendered as title, detail and one line per field
// error; with asJSON the problem document itself is written.
func reportError(stderr io.Writer, cmd string, err error, asJSON bool) int {
	var ae *apiError
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

// parseInterleaved parses args with fs, accepting flags before and after
// positional arguments ("--" ends the flags). It returns the positional
// arguments, or an exit code (0 after --help, 2 for a usage error).
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
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

// readJSONArg reads a JSON flag value: inline JSON, @file, or @- for stdin.
func readJSONArg(name, v string) (json.RawMessage, error) {
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

// usageFunc prints a command's usage text followed by its flags.
func usageFunc(fs *flag.FlagSet, text string) func() {
	return func() {
		fmt.Fprint(fs.Output(), text)
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
}
