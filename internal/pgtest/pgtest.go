// Package pgtest gives each test its own real, migrated PostgreSQL database.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		pool := pgtest.Pool(t) // fresh database, schema migrated
//		...
//	}
//
// Every call to URL or Pool creates a new database (a cheap copy of a
// template database migrated once) and drops it when the test ends, so tests
// may run in parallel and never see each other's rows.
//
// The server: if TASKER_TEST_DATABASE_URL is set (an admin URL, e.g. what
// `make test` exports), databases are created there; otherwise the first use
// starts a throwaway embedded PostgreSQL for the test binary (see
// internal/embeddedpg), which Main stops. Tests never skip: if PostgreSQL
// cannot be started, they fail and say why.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/embeddedpg"
	"github.com/taskerhq/tasker/internal/migrate"
)

// EnvURL names the environment variable holding an admin URL of a shared
// test server. Databases are created on it and dropped after each test.
const EnvURL = "TASKER_TEST_DATABASE_URL"

// templateLockKey serialises template builds across processes sharing a
// server (go test runs package binaries in parallel).
const templateLockKey int64 = 0x7461736b65727470 // "taskertp"

const opTimeout = 2 * time.Minute

var (
	mainCalled atomic.Bool
	once       sync.Once
	shared     *env
	sharedErr  error
	setupNote  string // timings of the lazy setup, logged by the test that paid for it
)

type env struct {
	server   *embeddedpg.Server // nil when using EnvURL
	tmpDir   string
	admin    *pgxpool.Pool
	adminURL string
	template string
}

// Main runs the package's tests and then stops the embedded server, if one
// was started. Call it from TestMain; it does not return.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func shutdown() error {
	if shared == nil {
		return nil
	}
	shared.admin.Close()
	var err error
	if shared.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = shared.server.Stop(ctx)
		if rmErr := os.RemoveAll(shared.tmpDir); rmErr != nil && err == nil {
			err = rmErr
		}
	}
	return err
}

func get(t testing.TB) *env {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: add `func TestMain(m *testing.M) { pgtest.Main(m) }` to this package's tests")
	}
	first := false
	once.Do(func() {
		first = true
		shared, sharedErr = setup()
	})
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	if first && setupNote != "" {
		t.Log("pgtest:", setupNote)
	}
	return shared
}

func setup() (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	e := &env{}
	began := time.Now()
	var notes []string
	if u := os.Getenv(EnvURL); u != "" {
		e.adminURL = u
	} else {
		dir, err := os.MkdirTemp("", "tasker-pgtest-")
		if err != nil {
			return nil, err
		}
		// The server may run as another user (when tests run as root).
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		e.tmpDir = dir
		srv, err := embeddedpg.Start(ctx, embeddedpg.Options{DataDir: filepath.Join(dir, "pgdata"), Ephemeral: true})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start embedded PostgreSQL (or set %s): %w", EnvURL, err)
		}
		e.server = srv
		e.adminURL = srv.URL("postgres")
		notes = append(notes, fmt.Sprintf("started postgres in %v", time.Since(began).Round(time.Millisecond)))
	}
	cfg, err := pgxpool.ParseConfig(e.adminURL)
	if err != nil {
		return nil, e.fail(fmt.Errorf("%s: %w", EnvURL, err))
	}
	cfg.MaxConns = 4
	if e.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, e.fail(err)
	}
	tb := time.Now()
	if e.template, err = ensureTemplate(ctx, e.admin, "tasker_tmpl_"); err != nil {
		return nil, e.fail(err)
	}
	notes = append(notes, fmt.Sprintf("template %s ready in %v", e.template, time.Since(tb).Round(time.Millisecond)))
	setupNote = strings.Join(notes, "; ")
	return e, nil
}

func (e *env) fail(err error) error {
	if e.admin != nil {
		e.admin.Close()
	}
	if e.server != nil {
		_ = e.server.Stop(context.Background())
		_ = os.RemoveAll(e.tmpDir)
	}
	return err
}

// ensureTemplate makes sure a template database holding the current
// migrations exists, and returns its name. The name carries a checksum of
// the migrations, so a shared server holds one template per schema version;
// it only appears (by rename) once fully migrated.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, prefix string) (string, error) {
	ms, err := migrate.Load()
	if err != nil {
		return "", err
	}
	fns, err := migrate.LoadFunctions()
	if err != nil {
		return "", err
	}
	name := prefix + migrate.Checksum(ms, fns)[:16]
	if ok, err := databaseExists(ctx, admin, name); err != nil || ok {
		return name, err
	}

	conn, err := admin.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", fmt.Errorf("lock template build: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck
	if ok, err := databaseExists(ctx, admin, name); err != nil || ok {
		return name, err // built by another process meanwhile
	}
	// Builds left by processes that died mid-build (we hold the lock, so
	// no build is in progress).
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'tasker\\_tmplbuild\\_%'")
	if err != nil {
		return "", err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	for _, db := range stale {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop stale template build %s: %w", db, err)
		}
	}

	build := "tasker_tmplbuild_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(build)+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create template database: %w", err)
	}
	if err := migrateDatabase(ctx, withDB(admin.Config().ConnConfig, build)); err != nil {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+ident(build)+" WITH (FORCE)")
		return "", fmt.Errorf("migrate template database: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(build)+" RENAME TO "+ident(name)); err != nil {
		return "", fmt.Errorf("rename template database: %w", err)
	}
	// Nobody may connect to the template: CREATE DATABASE ... TEMPLATE
	// fails while anyone is connected to it.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("seal template database: %w", err)
	}
	return name, nil
}

func migrateDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = migrate.Up(ctx, conn)
	return err
}

func databaseExists(ctx context.Context, admin *pgxpool.Pool, name string) (bool, error) {
	var ok bool
	err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok)
	return ok, err
}

func withDB(base *pgx.ConnConfig, dbname string) *pgx.ConnConfig {
	cfg := base.Copy()
	cfg.Database = dbname
	return cfg
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dbName builds a unique, recognisable database name for t (at most 63 bytes).
func dbName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	return "tasker_t_" + randomHex(5) + "_" + name
}

// createDatabase creates a database cloned from template, registers its
// removal, and returns its name.
func createDatabase(t testing.TB, e *env, template string) string {
	t.Helper()
	name := dbName(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := e.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// FORCE disconnects whatever the test left connected.
		if _, err := e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return name
}

// URL returns the URL of a new database with Tasker's schema migrated,
// dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	e := get(t)
	return urlFor(t, e, e.template)
}

// EmptyURL returns the URL of a new database with no schema at all (for
// testing migrations themselves), dropped when t ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	e := get(t)
	return urlFor(t, e, "template0")
}

func urlFor(t testing.TB, e *env, template string) string {
	t.Helper()
	u, err := replaceDatabase(e.adminURL, createDatabase(t, e, template))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// replaceDatabase points a postgres:// URL or a keyword/value DSN at dbname.
func replaceDatabase(conn, dbname string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvURL, err)
		}
		u.Path = "/" + dbname
		u.RawPath = ""
		return u.String(), nil
	}
	return conn + " dbname=" + dbname, nil // the last dbname wins
}

// Pool returns a pool on a new migrated database (see URL); the pool is
// closed and the database dropped when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the DROP registered earlier
	return pool
}
