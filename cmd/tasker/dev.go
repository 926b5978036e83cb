package main

import (
	"context"
	"fmt"
	"io"
)

// placeholder until the dev command lands.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tasker dev: not built yet")
	return 1
}
