// Package embeddedpg runs a private PostgreSQL server from the system's
// PostgreSQL binaries (initdb and postgres). `tasker dev` uses it when no
// DATABASE_URL is set, and the test helpers use it for throwaway servers.
//
// The server listens on 127.0.0.1 only, has no Unix socket, and requires a
// password (scram-sha-256) of every connection, also local ones: initdb
// gives the superuser "postgres" a random password, kept in the 0600 file
// PasswordFileName inside the data directory, which URL includes. A data
// directory initialised before that (no password file) keeps its old trust
// authentication. The server is a child process of the caller: it is
// told to shut down (fast mode) when Stop is called, and also by the kernel if
// the calling process dies, so no postmaster outlives its owner.
//
// When the caller runs as root (containers, CI), PostgreSQL refuses to run as
// root, so initdb and postgres run as the "postgres" system user when it
// exists, else as "nobody"; the data directory is chowned to that user.
package embeddedpg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries is returned (wrapped) when initdb and postgres cannot be found.
var ErrNoBinaries = errors.New("install PostgreSQL 15 server binaries: apt-get install postgresql-15 (or put initdb and pg_ctl on PATH)")

// Superuser is the bootstrap superuser created by initdb.
const Superuser = "postgres"

// PasswordFileName is the file, inside the data directory, holding the
// superuser's password (mode 0600, owned by the caller). A data directory
// without it was initialised with trust authentication and is used so.
const PasswordFileName = "tasker-superuser-password"

// Options configure Start.
type Options struct {
	// DataDir is the cluster directory. It is created (initdb) when it holds
	// no PG_VERSION, and reused otherwise. Required.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Ephemeral trades durability for speed (fsync, synchronous_commit,
	// full_page_writes and autovacuum off, few checkpoints). Only for
	// throwaway test servers.
	Ephemeral bool
	// BinDir, when set, is the only directory searched for initdb and
	// postgres. Otherwise PATH is searched, then /usr/lib/postgresql/*/bin
	// (highest version first).
	BinDir string
	// Settings are extra server settings (name → value), e.g.
	// {"max_connections": "300"}. They override the defaults.
	Settings map[string]string
	// StartTimeout bounds how long Start waits for the server to accept
	// connections; 0 means 60 seconds.
	StartTimeout time.Duration
}

func (o Options) startTimeout() time.Duration {
	if o.StartTimeout == 0 {
		return 60 * time.Second
	}
	return o.StartTimeout
}

// Server is a running PostgreSQL server.
type Server struct {
	port    int
	dataDir string
	logPath string
	logger  *slog.Logger
	// password is the superuser's ("" for a trust data directory).
	password string

	// owned is false when Start found a postmaster already running on
	// DataDir and attached to it; Stop then leaves it running.
	owned bool
	proc  *os.Process
	done  chan struct{} // closed when the postmaster has exited
	err   error         // wait result, valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Port returns the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.port }

// DataDir returns the cluster directory.
func (s *Server) DataDir() string { return s.dataDir }

// LogPath returns the server's log file (inside the data directory).
func (s *Server) LogPath() string { return s.logPath }

// URL returns a connection URL for dbname as the superuser.
// It carries the superuser's password; log it with url.URL.Redacted.
func (s *Server) URL(dbname string) string { return serverURL(s.port, dbname, s.password) }

func serverURL(port int, dbname, password string) string {
	user := url.User(Superuser)
	if password != "" {
		user = url.UserPassword(Superuser, password)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     user,
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// EnsureDatabase creates dbname unless it exists.
func (s *Server) EnsureDatabase(ctx context.Context, dbname string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("embeddedpg: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbname).Scan(&exists); err != nil {
		return fmt.Errorf("embeddedpg: look up database %q: %w", dbname, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize()); err != nil {
		var exists bool
		if conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbname).Scan(&exists) == nil && exists {
			return nil // created concurrently
		}
		return fmt.Errorf("embeddedpg: create database %q: %w", dbname, err)
	}
	return nil
}

// Start initialises DataDir if needed and starts a server on it. If a
// postmaster from another process is running on DataDir and accepts
// connections, Start attaches to it instead (and Stop will leave it
// running). If that postmaster is shutting down (its owner died or stopped
// it), Start waits up to a minute for it to exit, then starts its own.
func Start(ctx context.Context, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("embeddedpg: Options.DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embeddedpg: %w", err)
	}
	bins, err := findBinaries(opts.BinDir, os.Getenv("PATH"), defaultGlob)
	if err != nil {
		return nil, err
	}
	runAs, err := pickRunAs()
	if err != nil {
		return nil, err
	}

	if err := prepareDataDir(dataDir, runAs, logger); err != nil {
		return nil, err
	}
	// Serialise Starts on one data directory (two `tasker dev` launched
	// together): the second waits, then finds the first's server and
	// attaches to it.
	unlock, err := lockDir(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// A postmaster running on this data directory (another process's, or
	// one started by hand): use it rather than fail on its lock file, unless
	// it is on its way out.
	password, err := readPassword(dataDir)
	if err != nil {
		return nil, err
	}
	port, adopted, err := adoptRunning(ctx, dataDir, password, opts.startTimeout(), logger)
	if err != nil {
		return nil, err
	}
	if adopted {
		return &Server{port: port, dataDir: dataDir, logPath: filepath.Join(dataDir, logFileName), logger: logger, password: password}, nil
	}

	if err := chownDataDir(dataDir, runAs); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if password, err = initdb(ctx, bins, dataDir, runAs, logger); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("embeddedpg: %w", err)
	} else if password == "" {
		logger.Warn("postgres data directory has no password file: it was initialised with trust authentication, "+
			"so any local user can connect as superuser; remove it to start afresh with a password", "data_dir", dataDir)
	}

	// Port 0: pick a free port; if another process grabs it before the
	// postmaster binds it, try again with a new one.
	attempts := 1
	if opts.Port == 0 {
		attempts = 5
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("embeddedpg: pick a port: %w", err)
			}
		}
		s, err := start(ctx, bins, dataDir, port, password, runAs, opts, logger)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
		logger.Debug("port taken, retrying", "port", port)
	}
	return nil, lastErr
}

// Stop shuts the server down (fast mode: active sessions are disconnected)
// and waits for the postmaster to exit. It is a no-op for a server Start
// attached to rather than started, and safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	if !s.owned {
		return nil
	}
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	select {
	case <-s.done:
		return nil // already exited
	default:
	}
	// SIGINT is PostgreSQL's "fast" shutdown, what `pg_ctl stop -m fast` sends.
	_ = s.proc.Signal(syscall.SIGINT)
	fast := time.NewTimer(30 * time.Second)
	defer fast.Stop()
	select {
	case <-s.done:
		s.logger.Debug("postgres stopped", "port", s.port)
		return nil
	case <-ctx.Done():
	case <-fast.C:
	}
	// Immediate shutdown, then kill: never leave a postmaster behind.
	_ = s.proc.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
		return fmt.Errorf("embeddedpg: postgres did not stop in time; sent immediate shutdown")
	case <-time.After(5 * time.Second):
	}
	_ = s.proc.Kill()
	<-s.done
	return fmt.Errorf("embeddedpg: postgres did not stop; killed it")
}

const (
	logFileName = "postgres.log"
	defaultGlob = "/usr/lib/postgresql/*/bin"
)

var errPortInUse = errors.New("port in use")

type binaries struct {
	dir      string
	initdb   string
	postgres string
}

// findBinaries locates initdb and postgres: in binDir if set, else on the
// given PATH, else in the highest-versioned directory matching glob.
func findBinaries(binDir, pathEnv, glob string) (binaries, error) {
	if binDir != "" {
		if b, ok := binariesIn(binDir); ok {
			return b, nil
		}
		return binaries{}, fmt.Errorf("embeddedpg: no initdb and postgres in %s: %w", binDir, ErrNoBinaries)
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
		// pg_ctl on PATH (as Debian's postgresql-common wrappers or a
		// symlink farm provide) points at the real bin directory.
		if p, err := filepath.EvalSymlinks(filepath.Join(dir, "pg_ctl")); err == nil {
			if b, ok := binariesIn(filepath.Dir(p)); ok {
				return b, nil
			}
		}
	}
	dirs, _ := filepath.Glob(glob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	return binaries{}, ErrNoBinaries
}

func binariesIn(dir string) (binaries, bool) {
	b := binaries{dir: dir, initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	if isExecutable(b.initdb) && isExecutable(b.postgres) {
		return b, true
	}
	return binaries{}, false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// versionOf extracts the major version from /usr/lib/postgresql/<v>/bin.
func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// runAs is the identity the server runs as; nil means the current user.
type runAs struct {
	name     string
	uid, gid uint32
}

func pickRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("embeddedpg: running as root, and PostgreSQL refuses to run as root; create a \"postgres\" user (useradd --system postgres) or run as a normal user")
}

func (r *runAs) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C goes to the caller, which
		// then stops the server in order instead of it vanishing mid-query.
		Setpgid: true,
		// If the caller dies without Stop (crash, test timeout, SIGKILL),
		// the kernel asks the postmaster for a fast shutdown.
		Pdeathsig: syscall.SIGINT,
	}
	if r != nil {
		attr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid}
	}
	return attr
}

// prepareDataDir creates dataDir (mode 0700) and, when running as root, makes
// sure the server's user can reach it.
func prepareDataDir(dataDir string, r *runAs, logger *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("embeddedpg: %w", err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("embeddedpg: %w", err)
	}
	if r == nil {
		return nil
	}
	// Every ancestor must be searchable by the server's user.
	for dir := filepath.Dir(dataDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("embeddedpg: %w", err)
		}
		if !searchableBy(fi, r) {
			logger.Warn("making directory searchable for the postgres server user", "dir", dir, "user", r.name)
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("embeddedpg: %s must be searchable by user %s: %w", dir, r.name, err)
			}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return nil
}

// chownDataDir hands dataDir and everything in it to the server's user when
// running as root: a previous run may have been as another user. Only call
// it while no postmaster runs there, or files it lists may vanish under it.
func chownDataDir(dataDir string, r *runAs) error {
	if r == nil {
		return nil
	}
	return filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(r.uid), int(r.gid)); err != nil {
			return fmt.Errorf("embeddedpg: chown %s: %w", path, err)
		}
		return nil
	})
}

func searchableBy(fi fs.FileInfo, r *runAs) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	switch {
	case st.Uid == r.uid:
		return perm&0o100 != 0
	case st.Gid == r.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// initdb initialises dataDir with scram-sha-256 authentication for every
// connection and a random superuser password, which it stores in
// PasswordFileName and returns.
func initdb(ctx context.Context, bins binaries, dataDir string, r *runAs, logger *slog.Logger) (password string, err error) {
	began := time.Now()
	// initdb wants an empty directory; tolerate only our own log file.
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return "", fmt.Errorf("embeddedpg: %w", err)
	}
	for _, e := range entries {
		if e.Name() != logFileName && !strings.HasPrefix(e.Name(), logFileName+".") {
			return "", fmt.Errorf("embeddedpg: %s is not empty and has no PG_VERSION; remove it to start afresh", dataDir)
		}
		_ = os.Remove(filepath.Join(dataDir, e.Name()))
	}
	password = rand.Text()
	// initdb reads the password from a file; the data directory must be
	// empty, so it is a temporary file readable only by the server's user.
	pwfile, err := writePWFile(password, r)
	if err != nil {
		return "", err
	}
	defer os.Remove(pwfile)
	args := func(locale string) []string {
		return []string{
			"--pgdata=" + dataDir,
			"--auth=scram-sha-256",
			"--pwfile=" + pwfile,
			"--username=" + Superuser,
			"--encoding=UTF8",
			"--locale=" + locale,
			"--no-sync",
		}
	}
	cmd := exec.CommandContext(ctx, bins.initdb, args("C.UTF-8")...)
	cmd.Env = serverEnv(r)
	cmd.Dir = dataDir
	cmd.SysProcAttr = r.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("C.UTF-8")) {
		// Some systems lack the C.UTF-8 locale; C is always there.
		cleanDir(dataDir)
		cmd = exec.CommandContext(ctx, bins.initdb, args("C")...)
		cmd.Env = serverEnv(r)
		cmd.Dir = dataDir
		cmd.SysProcAttr = r.sysProcAttr()
		out, err = cmd.CombinedOutput()
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dataDir, PasswordFileName), []byte(password+"\n"), 0o600)
	}
	if err != nil {
		// Leave no half-initialised cluster: the next run would refuse it.
		cleanDir(dataDir)
		return "", fmt.Errorf("embeddedpg: initdb %s: %w\n%s", dataDir, err, tail(out, 30))
	}
	logger.Info("initialised postgres data directory", "data_dir", dataDir, "auth", "scram-sha-256",
		"password_file", filepath.Join(dataDir, PasswordFileName), "took", time.Since(began).Round(time.Millisecond))
	return password, nil
}

// writePWFile writes password to a new temporary file for initdb, owned by
// the server's user when running as root.
func writePWFile(password string, r *runAs) (string, error) {
	f, err := os.CreateTemp("", "embeddedpg-pwfile-*")
	if err != nil {
		return "", fmt.Errorf("embeddedpg: password file for initdb: %w", err)
	}
	name := f.Name()
	_, err = f.WriteString(password + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && r != nil {
		err = os.Chown(name, int(r.uid), int(r.gid))
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("embeddedpg: password file for initdb: %w", err)
	}
	return name, nil
}

// readPassword returns the superuser's password from dataDir's
// PasswordFileName, or "" when there is none (a trust data directory).
func readPassword(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, PasswordFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("embeddedpg: read the superuser password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func cleanDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// serverEnv is the environment for initdb and postgres: the caller's,
// minus libpq variables that could redirect them, with a usable HOME.
func serverEnv(r *runAs) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	home := os.Getenv("HOME")
	if r != nil {
		home = "/"
	}
	return append(env, "HOME="+home)
}

// shutdownWait bounds how long Start waits for a postmaster that is shutting
// down to exit. A fast shutdown ends the running queries and writes a
// checkpoint: seconds, usually.
const shutdownWait = 60 * time.Second

// adoptRunning deals with a postmaster already running on dataDir. One that
// accepts connections within timeout is adopted: adopted is true and port is
// its port. One that is shutting down (postmaster.pid says "stopping": its
// owner died, which makes it shut down, or stopped it) would refuse
// connections and then vanish, so it is waited for, up to shutdownWait;
// adopted is then false, as when none runs, and the caller starts its own.
func adoptRunning(ctx context.Context, dataDir, password string, timeout time.Duration, logger *slog.Logger) (port int, adopted bool, err error) {
	began := time.Now()
	var stopping time.Time // when it was first seen shutting down
	var last postmaster
	for {
		pm, ok := runningPostmaster(dataDir, logger)
		if !ok {
			if !stopping.IsZero() {
				logger.Info("earlier postgres has exited", "pid", last.pid, "waited", time.Since(stopping).Round(time.Millisecond))
			}
			return 0, false, nil
		}
		last = pm
		if pm.status == pmStatusStopping {
			if stopping.IsZero() {
				stopping = time.Now()
				logger.Info("waiting for the postgres of an earlier run to finish shutting down before starting a new one",
					"pid", pm.pid, "data_dir", dataDir, "max_wait", shutdownWait)
			} else if time.Since(stopping) > shutdownWait {
				return 0, false, fmt.Errorf("embeddedpg: postgres (pid %d) is still shutting down in %s after %v; wait for it to exit, or kill it",
					pm.pid, dataDir, shutdownWait)
			}
		} else {
			err := ping(ctx, pm.port, password, dataDir)
			if err == nil {
				logger.Info("using already running postgres", "pid", pm.pid, "port", pm.port, "data_dir", dataDir)
				return pm.port, true, nil
			}
			if time.Since(began) > timeout {
				return 0, false, fmt.Errorf("embeddedpg: postgres (pid %d) running in %s does not accept connections on port %d: %w",
					pm.pid, dataDir, pm.port, err)
			}
		}
		select {
		case <-ctx.Done():
			return 0, false, fmt.Errorf("embeddedpg: waiting for postgres (pid %d) in %s: %w", pm.pid, dataDir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// postmaster is what postmaster.pid says of a live postmaster.
type postmaster struct {
	pid, port int
	// status is line 8: "starting", "ready", "standby" or "stopping"
	// (pmStatusStopping), which the postmaster writes when it is told to
	// shut down; empty until the postmaster writes it.
	status string
}

const pmStatusStopping = "stopping"

// runningPostmaster reports a live postmaster that owns dataDir, from its
// postmaster.pid (line 1: pid, line 4: port, line 8: status). A pid file
// whose pid is dead is left for the new postmaster, which removes it itself;
// one whose pid now belongs to an unrelated process (pid reuse after a crash
// or reboot) would make the new postmaster refuse to start, so it is removed
// here.
func runningPostmaster(dataDir string, logger *slog.Logger) (postmaster, bool) {
	pidPath := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return postmaster{}, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return postmaster{}, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 {
		return postmaster{}, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return postmaster{}, false // dead: stale file, postgres copes
	}
	cmdline, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	_, err2 = os.Stat(fmt.Sprintf("/proc/%d/cwd", pid))
	if err1 != nil || err2 != nil {
		return postmaster{}, false // cannot tell; let postgres decide
	}
	// A postmaster's working directory is its data directory.
	if !bytes.Contains(cmdline, []byte("postgres")) || !sameDir(fmt.Sprintf("/proc/%d/cwd", pid), dataDir) {
		logger.Warn("removing stale postmaster.pid (its pid belongs to another process now)", "pid", pid, "file", pidPath)
		_ = os.Remove(pidPath)
		return postmaster{}, false
	}
	pm := postmaster{pid: pid, port: port}
	if len(lines) >= 8 {
		pm.status = strings.TrimSpace(lines[7])
	}
	return pm, true
}

// lockDir takes an exclusive flock on dir, waiting for ctx.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("embeddedpg: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("embeddedpg: lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("embeddedpg: waiting for another process starting postgres in %s: %w", dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sameDir reports whether two paths name the same directory (following
// symlinks).
func sameDir(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(ctx context.Context, bins binaries, dataDir string, port int, password string, r *runAs, opts Options, logger *slog.Logger) (*Server, error) {
	began := time.Now()
	logPath := filepath.Join(dataDir, logFileName)
	_ = os.Rename(logPath, logPath+".1") // keep the previous run's log
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embeddedpg: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": "",
		"max_connections":         "200",
		"logging_collector":       "off",
	}
	if opts.Ephemeral {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
		settings["shared_buffers"] = "32MB"
		settings["max_wal_size"] = "1GB"
		settings["checkpoint_timeout"] = "1h"
		settings["wal_init_zero"] = "off"
		// Test databases live for seconds; autovacuum workers visiting them
		// (and the templates they are cloned from) only slow CREATE DATABASE.
		settings["autovacuum"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", dataDir}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}

	s := &Server{port: port, dataDir: dataDir, logPath: logPath, logger: logger, password: password, owned: true, done: make(chan struct{})}
	started := make(chan error, 1)
	// Pdeathsig fires when the *thread* that forked the child exits, so the
	// child is started and waited for on one locked OS thread.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bins.postgres, args...)
		cmd.Env = serverEnv(r)
		cmd.Dir = dataDir
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		cmd.SysProcAttr = r.sysProcAttr()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		s.proc = cmd.Process
		started <- nil
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("embeddedpg: start postgres: %w", err)
	}

	if err := s.waitReady(ctx, time.Now().Add(opts.startTimeout())); err != nil {
		_ = s.Stop(context.Background())
		logTail := readTail(logPath, 30)
		if strings.Contains(logTail, "could not bind") || strings.Contains(logTail, "Address already in use") {
			return nil, fmt.Errorf("embeddedpg: postgres could not listen on 127.0.0.1:%d: %w\n%s", port, errPortInUse, logTail)
		}
		return nil, fmt.Errorf("embeddedpg: %w\n--- %s (tail) ---\n%s", err, logPath, logTail)
	}
	logger.Info("postgres started", "port", port, "data_dir", dataDir, "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// waitReady polls until a connection succeeds, the deadline passes, ctx is
// cancelled, or the postmaster exits.
func (s *Server) waitReady(ctx context.Context, deadline time.Time) error {
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		// Give up on this attempt at once if the postmaster exits (the
		// port may belong to another program that accepts and stays mute).
		attempt, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-attempt.Done():
			}
		}()
		err := ping(attempt, s.port, s.password, s.dataDir)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during startup (%v)", s.err)
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for postgres: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready on port %d: %w", s.port, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		case <-s.done:
		}
	}
}

// ping connects once to the server on port and checks that it serves
// dataDir, not another cluster that happens to listen there.
func ping(ctx context.Context, port int, password, dataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL(port, "postgres", password))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return err
	}
	if !sameDir(dir, dataDir) {
		return fmt.Errorf("port %d is served by another PostgreSQL (data directory %s)", port, dir)
	}
	return nil
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(b, n)
}

func tail(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
