// Command testtools builds the pinned test servers (the Lambda Runtime
// Interface Emulator) into bin/ at the repository root, as tests would on
// first use:
//
//	go run ./internal/testenv/cmd/testtools                 # all tools
//	go run ./internal/testenv/cmd/testtools aws-lambda-rie  # some
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/taskerhq/tasker/internal/testenv"
)

func main() {
	tools := testenv.Tools
	if len(os.Args) > 1 {
		tools = nil
		for _, name := range os.Args[1:] {
			tl, ok := testenv.Lookup(name)
			if !ok {
				fmt.Fprintf(os.Stderr, "testtools: unknown tool %q\n", name)
				os.Exit(2)
			}
			tools = append(tools, tl)
		}
	}
	for _, tl := range tools {
		path, err := testenv.Install(context.Background(), tl)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testtools:", err)
			os.Exit(1)
		}
		fmt.Printf("%s@%s -> %s\n", tl.Name, tl.Version, path)
	}
}
