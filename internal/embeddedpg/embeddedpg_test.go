package embeddedpg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startServer(t *testing.T, dataDir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	s, err := Start(ctx, Options{DataDir: dataDir, Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("server up on port %d in %v", s.Port(), time.Since(began).Round(time.Millisecond))
	return s
}

func stopServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func queryInt(t *testing.T, url, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// processesIn lists the pids whose working directory is dir (the postmaster
// and every backend chdir into the data directory).
func processesIn(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitNoProcesses(t *testing.T, dir string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pids := processesIn(t, dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still running in %s: %v", dir, pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	s := startServer(t, dir)

	if got := queryInt(t, s.URL("postgres"), "SELECT current_setting('server_version_num')::int / 10000"); got < 15 {
		t.Errorf("server major version %d, want >= 15", got)
	}
	if got := queryInt(t, s.URL("postgres"), "SELECT (current_setting('fsync') = 'off')::int"); got != 1 {
		t.Errorf("ephemeral server has fsync on")
	}
	if !strings.HasPrefix(s.URL("x"), "postgres://postgres:") || !strings.Contains(s.URL("x"), "@127.0.0.1:") || !strings.HasSuffix(s.URL("x"), "/x?sslmode=disable") {
		t.Errorf("URL = %q", s.URL("x"))
	}
	if err := s.EnsureDatabase(context.Background(), "tasker"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(context.Background(), "tasker"); err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	if got := queryInt(t, s.URL("tasker"), "SELECT 1"); got != 1 {
		t.Fatal("no tasker database")
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid == 0 {
			t.Errorf("running as root but data dir is owned by root")
		}
	}
	if len(processesIn(t, dir)) == 0 {
		t.Fatalf("no postgres processes found in %s", dir)
	}

	began := time.Now()
	stopServer(t, s)
	t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	waitNoProcesses(t, dir, 5*time.Second)
	if _, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())), time.Second); err == nil {
		t.Errorf("port %d still accepting connections after Stop", s.Port())
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	s := startServer(t, dir)
	exec1(t, s.URL("postgres"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	stopServer(t, s)
	version, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}

	s = startServer(t, dir)
	defer stopServer(t, s)
	if got := queryInt(t, s.URL("postgres"), "SELECT v FROM kept"); got != 42 {
		t.Errorf("after restart got %d, want 42", got)
	}
	again, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.ModTime().Equal(version.ModTime()) {
		t.Errorf("data directory was re-initialised")
	}
	if _, err := os.Stat(filepath.Join(dir, logFileName+".1")); err != nil {
		t.Errorf("previous log not kept: %v", err)
	}
}

func TestStalePidFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	s := startServer(t, dir)
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	stopServer(t, s)

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pid  int
	}{
		// A postmaster killed with SIGKILL: its pid file names a dead pid.
		{"dead pid", dead.ProcessState.Pid()},
		// ... and after a reboot that pid may belong to something else.
		{"reused pid", os.Getpid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := strings.SplitN(string(pidFile), "\n", 2)
			stale := strconv.Itoa(tc.pid) + "\n" + lines[1]
			if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(stale), 0o600); err != nil {
				t.Fatal(err)
			}
			if os.Geteuid() == 0 {
				r, err := pickRunAs()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(filepath.Join(dir, "postmaster.pid"), int(r.uid), int(r.gid)); err != nil {
					t.Fatal(err)
				}
			}
			s := startServer(t, dir)
			defer stopServer(t, s)
			if got := queryInt(t, s.URL("postgres"), "SELECT 1"); got != 1 {
				t.Fatal("server not usable")
			}
		})
	}
}

func TestAttachToRunningServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	s1 := startServer(t, dir)
	defer stopServer(t, s1)

	s2 := startServer(t, dir)
	if s2.Port() != s1.Port() {
		t.Errorf("attached to port %d, want %d", s2.Port(), s1.Port())
	}
	stopServer(t, s2) // not owned: must leave the server running
	if got := queryInt(t, s1.URL("postgres"), "SELECT 1"); got != 1 {
		t.Fatal("server stopped by a non-owner")
	}
}

func TestMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	_, err := findBinaries("", empty+string(os.PathListSeparator)+"/nonexistent", filepath.Join(empty, "*", "bin"))
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	const want = "install PostgreSQL 15 server binaries: apt-get install postgresql-15 (or put initdb and pg_ctl on PATH)"
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}

	_, err = Start(context.Background(), Options{DataDir: filepath.Join(empty, "data"), BinDir: empty})
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), want) {
		t.Errorf("Start with empty BinDir: err = %v", err)
	}
}

func TestFindBinariesPrefersHighestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"initdb", "postgres", "pg_ctl"} {
			if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := findBinaries("", "", filepath.Join(root, "*", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin"); b.dir != want {
		t.Errorf("dir = %s, want %s", b.dir, want)
	}
	// PATH wins over the glob; a pg_ctl symlink on PATH leads to its bin dir.
	onPath := filepath.Join(t.TempDir(), "path")
	if err := os.MkdirAll(onPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "13", "bin", "pg_ctl"), filepath.Join(onPath, "pg_ctl")); err != nil {
		t.Fatal(err)
	}
	b, err = findBinaries("", onPath, filepath.Join(root, "*", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "13", "bin"); b.dir != want {
		t.Errorf("dir = %s, want %s", b.dir, want)
	}
}

// TestServerDiesWithOwner kills (SIGKILL) a process that started a server
// and checks the server goes away on its own.
func TestServerDiesWithOwner(t *testing.T) {
	if dir := os.Getenv("EMBEDDEDPG_HELPER_DIR"); dir != "" {
		s, err := Start(context.Background(), Options{DataDir: dir, Ephemeral: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("port", s.Port())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := filepath.Join(t.TempDir(), "pgdata")
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithOwner$")
	cmd.Env = append(os.Environ(), "EMBEDDEDPG_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "port ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q %v", line, err)
	}
	if len(processesIn(t, dir)) == 0 {
		t.Fatal("helper started no server")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitNoProcesses(t, dir, 15*time.Second)
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := filepath.Join(t.TempDir(), "pgdata")
	began := time.Now()
	_, err = Start(context.Background(), Options{DataDir: dir, Port: port, Ephemeral: true})
	if err == nil {
		t.Fatal("Start succeeded on a taken port")
	}
	if !errors.Is(err, errPortInUse) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %v to notice", d)
	}
	waitNoProcesses(t, dir, 5*time.Second)

	// The port is taken by another PostgreSQL, which answers: Start must
	// not mistake it for its own server.
	other := startServer(t, filepath.Join(t.TempDir(), "other"))
	defer stopServer(t, other)
	_, err = Start(context.Background(), Options{DataDir: dir, Port: other.Port(), Ephemeral: true})
	if !errors.Is(err, errPortInUse) {
		t.Errorf("Start on another server's port: err = %v", err)
	}
	waitNoProcesses(t, dir, 5*time.Second)
}

func TestConcurrentStartsShareOneServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	servers := make([]*Server, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i := range servers {
		go func() {
			servers[i], errs[i] = Start(context.Background(), Options{DataDir: dir, Ephemeral: true})
			done <- i
		}()
	}
	<-done
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
	}
	if servers[0].Port() != servers[1].Port() || servers[0].owned == servers[1].owned {
		t.Fatalf("want one owner and one attached server on one port: %+v %+v", servers[0], servers[1])
	}
	for _, s := range servers {
		if got := queryInt(t, s.URL("postgres"), "SELECT 1"); got != 1 {
			t.Fatal("server not usable")
		}
	}
	for _, s := range servers {
		stopServer(t, s)
	}
	waitNoProcesses(t, dir, 5*time.Second)
}

// busyOwnerEnv makes the test binary act as busyOwner (see
// TestRestartRightAfterOwnerKilled); its value is "DATADIR:PORT".
const busyOwnerEnv = "EMBEDDEDPG_BUSY_OWNER"

// busyOwnerRows rows (about 30 MB) are written by each busyOwner.
const busyOwnerRows = 50000

// busyOwner is what `tasker dev` is to its server: it starts the server on
// dataDir and port, leaves dirty data for the shutdown checkpoint and
// queries in flight, prints "ready ROWS" (rows committed) and waits to be
// killed.
func busyOwner(dataDir string, port int) {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(ctx, Options{DataDir: dataDir, Port: port, Logger: logger})
	if err != nil {
		fail(err)
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		fail(err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS filler (n int, pad text);
		INSERT INTO filler SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, `+strconv.Itoa(busyOwnerRows)+`) g`)
	if err != nil {
		fail(err)
	}
	var rows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM filler").Scan(&rows); err != nil {
		fail(err)
	}
	for range 4 {
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err != nil {
			fail(err)
		}
		go c.Exec(ctx, "SELECT pg_sleep(600)") //nolint:errcheck // ended by the kill
	}
	fmt.Println("ready", rows)
	time.Sleep(2 * time.Minute)
	os.Exit(0)
}

// TestRestartRightAfterOwnerKilled kills (SIGKILL) the process that owns a
// busy server and at once starts another on the same data directory and
// port, several times, as a supervisor restarting a crashed `tasker dev`
// does. The old postmaster is still shutting down (it dies with its owner);
// each Start must wait for it to exit and bring up its own server.
func TestRestartRightAfterOwnerKilled(t *testing.T) {
	if v := os.Getenv(busyOwnerEnv); v != "" {
		dir, port, _ := strings.Cut(v, ":")
		n, err := strconv.Atoi(port)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		busyOwner(dir, n)
	}
	dir := filepath.Join(t.TempDir(), "pgdata")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	const waitLine = "waiting for the postgres of an earlier run"
	waited := 0
	committed := 0
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRestartRightAfterOwnerKilled$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", busyOwnerEnv, dir, port))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		rows, convErr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("owner %d (killed after %v) log:\n%s", i, time.Since(began).Round(time.Millisecond), stderr.String())
		if err != nil || convErr != nil {
			t.Fatalf("owner %d did not come up: %q %v", i, line, err)
		}
		if rows != committed+busyOwnerRows {
			t.Fatalf("owner %d sees %d rows, want %d", i, rows, committed+busyOwnerRows)
		}
		committed = rows
		if strings.Contains(stderr.String(), waitLine) {
			waited++
		}
	}

	// Once more in this process, which must own (not adopt) the server.
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dir, Port: port, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Logf("last Start log:\n%s", logs.String())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer waitNoProcesses(t, dir, 15*time.Second)
	defer stopServer(t, s)
	if !s.owned {
		t.Error("Start adopted the server of the killed owner")
	}
	if strings.Contains(logs.String(), waitLine) {
		waited++
	}
	if got := queryInt(t, s.URL("postgres"), "SELECT count(*) FROM filler"); got != committed {
		t.Errorf("%d rows after the restarts, want %d", got, committed)
	}
	// The restarts above came before the old server was gone, or this test
	// tests nothing.
	if waited == 0 {
		t.Errorf("no Start found the old server still shutting down (no %q in the logs)", waitLine)
	}
}

// A new data directory requires a password of every connection, also a
// local one as the superuser: the password is random, kept in a 0600 file
// in the data directory, and carried by URL.
func TestPasswordRequired(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	s := startServer(t, dir)
	defer stopServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fi, err := os.Stat(filepath.Join(dir, PasswordFileName))
	if err != nil {
		t.Fatalf("password file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", fi.Mode().Perm())
	}
	if s.password == "" || !strings.Contains(s.URL("postgres"), ":"+s.password+"@") {
		t.Fatalf("URL %q does not carry the password", s.URL("postgres"))
	}
	for name, u := range map[string]string{
		"no password":    serverURL(s.Port(), "postgres", ""),
		"wrong password": serverURL(s.Port(), "postgres", "not-"+s.password),
	} {
		conn, err := pgx.Connect(ctx, u)
		if err == nil {
			conn.Close(ctx)
			t.Errorf("%s: connected as the superuser", name)
			continue
		}
		t.Logf("%s: refused: %v", name, err)
	}
	if got := queryInt(t, s.URL("postgres"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
}

// A data directory initialised with trust authentication (before passwords,
// so without a password file) keeps working.
func TestTrustDataDirKeepsWorking(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	bins, err := findBinaries("", os.Getenv("PATH"), defaultGlob)
	if err != nil {
		t.Skip(err)
	}
	r, err := pickRunAs()
	if err != nil {
		t.Fatal(err)
	}
	if err := prepareDataDir(dir, r, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if err := chownDataDir(dir, r); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins.initdb, "--pgdata="+dir, "--auth=trust", "--username="+Superuser, "--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.Env = serverEnv(r)
	cmd.Dir = dir
	cmd.SysProcAttr = r.sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb --auth=trust: %v\n%s", err, out)
	}
	s := startServer(t, dir)
	defer stopServer(t, s)
	if s.password != "" || strings.Contains(s.URL("postgres"), ":@") {
		t.Errorf("trust data directory got a password: URL %q", s.URL("postgres"))
	}
	if got := queryInt(t, s.URL("postgres"), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d", got)
	}
}
