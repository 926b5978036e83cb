// Command withpg runs a command with a throwaway PostgreSQL server for tests:
//
//	go run ./scripts/withpg -- go test ./...
//
// It starts an embedded server (internal/embeddedpg, tuned for speed, in a
// temporary directory), exports its admin URL as TASKER_TEST_DATABASE_URL so
// every test package (internal/pgtest) shares it instead of starting its
// own, runs the command, then stops the server and removes its data, however
// the command ended. It exits with the command's exit status. If
// TASKER_TEST_DATABASE_URL is already set, it just runs the command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/taskerhq/tasker/internal/embeddedpg"
	"github.com/taskerhq/tasker/internal/pgtest"
)

func main() {
	os.Exit(run())
}

func run() int {
	maxConns := flag.Int("max-connections", 500, "server max_connections")
	verbose := flag.Bool("v", false, "log server start and stop")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: withpg [-max-connections N] [-v] -- command [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		return 2
	}
	// The command handles Ctrl-C itself (it is in our process group);
	// we only wait for it to finish, then clean up.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)

	if os.Getenv(pgtest.EnvURL) != "" {
		return runCommand(flag.Args(), nil)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dir, err := os.MkdirTemp("", "tasker-withpg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The server may run as another user when we are root.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	began := time.Now()
	srv, err := embeddedpg.Start(ctx, embeddedpg.Options{
		DataDir:   filepath.Join(dir, "pgdata"),
		Ephemeral: true,
		Logger:    logger,
		Settings:  map[string]string{"max_connections": strconv.Itoa(*maxConns)},
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	logger.Info("test server ready", "url", srv.URL("postgres"), "took", time.Since(began).Round(time.Millisecond))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "withpg:", err)
		}
	}()
	return runCommand(flag.Args(), []string{pgtest.EnvURL + "=" + srv.URL("postgres")})
}

func runCommand(args, env []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code >= 0 {
			return code
		}
		return 1 // killed by a signal
	default:
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
}
