// Package token is `tasker token`: it mints an HS256 API token for local
// use.
package token

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/taskerhq/tasker/internal/cli"
	"io"
	"os"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/auth"
)

const tokenUsage = `usage: tasker token [--secret S] [--sub S] [--scope "tasks:* steps:*"] [--all] [--ttl 1h]

Mints an HS256 bearer token for a Tasker API whose TASKER_AUTH_HS256_SECRET
is S (default $TASKER_AUTH_HS256_SECRET; at least 32 bytes). Prints the
token; use it with --token or TASKER_TOKEN:

  export TASKER_TOKEN=$(tasker token)
`

// Run is `tasker token`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "HS256 secret (default $"+auth.EnvHS256Secret+")")
	sub := fs.String("sub", "", "subject, recorded as the actor of operator actions (default $USER, else tasker-cli)")
	scope := fs.String("scope", "tasks:* steps:*", "space-separated permissions, e.g. \"tasks:read steps:read\"")
	all := fs.Bool("all", false, "grant every permission ("+strings.Join(auth.AllPermissions, " ")+")")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	iss := fs.String("iss", "", "issuer claim (default $"+auth.EnvIssuer+")")
	aud := fs.String("aud", "", "audience claim (default $"+auth.EnvAudience+")")
	asJSON := fs.Bool("json", false, "print {\"token\",\"expires_at\",\"scope\"} as JSON")
	fs.Usage = cli.UsageFunc(fs, tokenUsage)
	pos, code, ok := cli.ParseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "tasker token: unexpected argument %q\n", pos[0])
		return 2
	}
	if *secret == "" {
		*secret = os.Getenv(auth.EnvHS256Secret)
	}
	if *secret == "" {
		fmt.Fprintf(stderr, "tasker token: no secret: pass --secret or set %s (the same value the server uses)\n", auth.EnvHS256Secret)
		return 2
	}
	if len(*secret) < auth.MinHS256SecretLen {
		fmt.Fprintf(stderr, "tasker token: the secret must be at least %d bytes, got %d\n", auth.MinHS256SecretLen, len(*secret))
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "tasker token: --ttl must be positive")
		return 2
	}
	if *sub == "" {
		*sub = os.Getenv("USER")
	}
	if *sub == "" {
		*sub = "tasker-cli"
	}
	perms := strings.Join(strings.Fields(*scope), " ")
	if *all {
		perms = strings.Join(auth.AllPermissions, " ")
	}
	if perms == "" {
		fmt.Fprintln(stderr, "tasker token: --scope is empty: the token would allow nothing")
		return 2
	}
	now := time.Now()
	exp := now.Add(*ttl)
	claims := map[string]any{"sub": *sub, "scope": perms, "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix()}
	if *iss == "" {
		*iss = os.Getenv(auth.EnvIssuer)
	}
	if *iss != "" {
		claims["iss"] = *iss
	}
	if *aud == "" {
		*aud = os.Getenv(auth.EnvAudience)
	}
	if *aud != "" {
		claims["aud"] = *aud
	}
	tok, err := auth.SignHS256([]byte(*secret), claims)
	if err != nil {
		fmt.Fprintf(stderr, "tasker token: %v\n", err)
		return 1
	}
	if *asJSON {
		out, _ := json.Marshal(map[string]any{
			"token": tok, "expires_at": exp.UTC().Format(time.RFC3339), "scope": perms, "sub": *sub,
		})
		cli.WriteRaw(stdout, out)
		return 0
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
