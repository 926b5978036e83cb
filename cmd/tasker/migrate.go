package main

import (
	"context"
	"fmt"
	"io"
)

// placeholder until the migrate command lands.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tasker migrate: not built yet")
	return 1
}
