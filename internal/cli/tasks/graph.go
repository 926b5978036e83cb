package tasks

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/taskerhq/tasker/internal/cli"
)

const graphUsage = `usage: tasker graph ID [--format mermaid|dot|svg|json]

Prints the task's step graph coloured by state (default: Mermaid).
`

// Graph is `tasker graph ID`.
func Graph(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tasker graph", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := cli.AddAPIFlags(fs)
	format := fs.String("format", "", "mermaid, dot, svg or json (default mermaid; json with --json)")
	fs.Usage = cli.UsageFunc(fs, graphUsage)
	id, c, code, ok := oneIDCommand(fs, api, "graph", args, stderr)
	if !ok {
		return code
	}
	f := *format
	if f == "" {
		f = "mermaid"
		if api.JSON {
			f = "json"
		}
	}
	switch f {
	case "mermaid", "dot", "svg", "json":
	default:
		fmt.Fprintf(stderr, "tasker graph: --format %q: want mermaid, dot, svg or json\n", f)
		return 2
	}
	data, err := c.TaskGraph(ctx, id, f)
	if err != nil {
		return cli.ReportError(stderr, "graph", err, api.JSON)
	}
	cli.WriteRaw(stdout, data)
	return 0
}
