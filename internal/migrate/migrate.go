// Package migrate applies Tasker's SQL migrations (sql/migrations, embedded
// as tasksql.Migrations) to a database.
//
// Migrations are files named NNNN_name.sql, applied in lexical order, each in
// its own transaction together with its row in tasker_schema_migrations. A
// file is executed as one multi-statement simple-protocol Exec, so PL/pgSQL
// bodies with semicolons need no special care. Concurrent migrators (several
// Lambdas cold-starting, two `tasker dev` processes) serialise on a
// session-level advisory lock, so each migration is applied exactly once.
// An applied migration whose file has since changed is an error: migrations
// are append-only; write a new one instead.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	tasksql "github.com/taskerhq/tasker/sql"
)

// Table records applied migrations.
const Table = "tasker_schema_migrations"

// LockKey is the pg_advisory_lock key migrators serialise on.
const LockKey int64 = 0x7461736b65726d67 // "taskermg"

// Migration is one migration file.
type Migration struct {
	Version  string // "0002"
	Name     string // "functions"
	File     string // "0002_functions.sql"
	Checksum string // hex SHA-256 of the file
	SQL      string
}

// Result reports what Up did.
type Result struct {
	// Applied lists the files applied by this call, in order.
	Applied []string
	// Current is the highest applied version after the call ("" if none).
	Current string
}

// State is one migration's state in Status.
type State struct {
	Migration
	Applied   bool
	AppliedAt time.Time // zero unless Applied
}

// StatusResult is what Status reports.
type StatusResult struct {
	Migrations []State
	// Current is the highest applied version ("" if none).
	Current string
	// Pending lists files not yet applied, in order.
	Pending []string
	// Unknown lists versions recorded in the database that have no file
	// here (the database was migrated by a newer build).
	Unknown []string
}

// Option configures Up and Status.
type Option func(*config)

type config struct {
	fsys fs.FS
}

// WithFS reads migrations from fsys instead of tasksql.Migrations. Files
// named NNNN_name.sql are taken from the root of fsys, or from its
// "migrations" directory if the root has none.
func WithFS(fsys fs.FS) Option { return func(c *config) { c.fsys = fsys } }

func newConfig(opts []Option) config {
	c := config{fsys: tasksql.Migrations}
	for _, o := range opts {
		o(&c)
	}
	return c
}

var fileRE = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_\-]+)\.sql$`)

// Load reads and validates the migrations, in order. With no options it
// reads the embedded tasksql.Migrations.
func Load(opts ...Option) ([]Migration, error) {
	return load(newConfig(opts).fsys)
}

func load(fsys fs.FS) ([]Migration, error) {
	dir := "."
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	if !hasSQL(entries) {
		if sub, err := fs.ReadDir(fsys, "migrations"); err == nil {
			dir, entries = "migrations", sub
		}
	}
	var out []Migration
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrate: %s: migration files must be named NNNN_name.sql", e.Name())
		}
		if other, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("migrate: %s and %s have the same version %s", other, e.Name(), m[1])
		}
		seen[m[1]] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{
			Version:  m[1],
			Name:     m[2],
			File:     e.Name(),
			Checksum: hex.EncodeToString(sum[:]),
			SQL:      string(b),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

func hasSQL(entries []fs.DirEntry) bool {
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			return true
		}
	}
	return false
}

// Checksum identifies a set of migrations (their files and contents); test
// helpers name template databases with it.
func Checksum(ms []Migration) string {
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\x00%s\x00", m.File, m.Checksum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DB is a *pgx.Conn, a *pgxpool.Pool or a *pgxpool.Conn. Up runs on a
// single connection (acquired from a pool for the duration of the call).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func withConn(ctx context.Context, db DB, fn func(*pgx.Conn) error) error {
	switch d := db.(type) {
	case *pgx.Conn:
		return fn(d)
	case *pgxpool.Conn:
		return fn(d.Conn())
	case *pgxpool.Pool:
		c, err := d.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("migrate: acquire connection: %w", err)
		}
		defer c.Release()
		return fn(c.Conn())
	default:
		return fmt.Errorf("migrate: unsupported DB type %T (want *pgx.Conn, *pgxpool.Pool or *pgxpool.Conn)", db)
	}
}

// UpURL connects to databaseURL and applies pending migrations.
func UpURL(ctx context.Context, databaseURL string, opts ...Option) (Result, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Up(ctx, conn, opts...)
}

// Up applies every pending migration, in order, each in its own
// transaction. It holds a session-level advisory lock meanwhile, so
// concurrent callers apply each migration once. A failed migration is rolled
// back and not recorded; migrations before it stay applied, and the Result
// returned with the error says which those were.
func Up(ctx context.Context, db DB, opts ...Option) (Result, error) {
	cfg := newConfig(opts)
	ms, err := load(cfg.fsys)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = withConn(ctx, db, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey); err != nil {
			return fmt.Errorf("migrate: take advisory lock: %w", err)
		}
		defer func() {
			// If the connection broke, the server released the lock anyway.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", LockKey)
		}()

		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+Table+` (
	version    text        PRIMARY KEY,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return fmt.Errorf("migrate: create %s: %w", Table, err)
		}
		applied, err := appliedVersions(ctx, conn)
		if err != nil {
			return err
		}
		if err := verify(ms, applied); err != nil {
			return err
		}
		defer func() { res.Current = highest(applied) }()
		for _, m := range ms {
			if _, ok := applied[m.Version]; ok {
				continue
			}
			if err := apply(ctx, conn, m); err != nil {
				return err
			}
			res.Applied = append(res.Applied, m.File)
			applied[m.Version] = appliedRow{checksum: m.Checksum}
		}
		return nil
	})
	return res, err
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %s: begin: %w", m.File, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	// One simple-protocol round trip runs every statement in the file.
	if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
		return fmt.Errorf("migrate: %s: %w", m.File, describe(err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+Table+` (version, name, checksum, applied_at) VALUES ($1, $2, $3, now())`,
		m.Version, m.Name, m.Checksum); err != nil {
		return fmt.Errorf("migrate: %s: record: %w", m.File, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %s: commit: %w", m.File, err)
	}
	return nil
}

// describe adds the server's position and detail to a migration error.
func describe(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	var extra []string
	if pgErr.Position > 0 {
		extra = append(extra, fmt.Sprintf("at character %d", pgErr.Position))
	}
	if pgErr.Where != "" {
		extra = append(extra, pgErr.Where)
	}
	if pgErr.Detail != "" {
		extra = append(extra, pgErr.Detail)
	}
	if len(extra) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(extra, "; "))
}

type appliedRow struct {
	checksum  string
	appliedAt time.Time
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[string]appliedRow, error) {
	rows, err := conn.Query(ctx, `SELECT version, checksum, applied_at FROM `+Table)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	out := map[string]appliedRow{}
	for rows.Next() {
		var v string
		var r appliedRow
		if err := rows.Scan(&v, &r.checksum, &r.appliedAt); err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
		}
		out[v] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", Table, err)
	}
	return out, nil
}

// ErrChecksumMismatch is returned (wrapped) when an applied migration's file
// has changed since it was applied.
var ErrChecksumMismatch = errors.New("applied migration was modified")

func verify(ms []Migration, applied map[string]appliedRow) error {
	var bad []string
	for _, m := range ms {
		if r, ok := applied[m.Version]; ok && r.checksum != m.Checksum {
			bad = append(bad, m.File)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("migrate: %w: %s changed after it was applied (checksum differs); migrations are append-only, add a new migration instead",
			ErrChecksumMismatch, strings.Join(bad, ", "))
	}
	return nil
}

func highest(applied map[string]appliedRow) string {
	cur := ""
	for v := range applied {
		if v > cur {
			cur = v
		}
	}
	return cur
}

// StatusURL connects to databaseURL and reports migration status.
func StatusURL(ctx context.Context, databaseURL string, opts ...Option) (StatusResult, error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return StatusResult{}, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Status(ctx, conn, opts...)
}

// Status reports which migrations are applied and which are pending. It
// takes no lock and changes nothing. A modified applied migration is
// reported as an ErrChecksumMismatch error alongside the status.
func Status(ctx context.Context, db DB, opts ...Option) (StatusResult, error) {
	cfg := newConfig(opts)
	ms, err := load(cfg.fsys)
	if err != nil {
		return StatusResult{}, err
	}
	var res StatusResult
	err = withConn(ctx, db, func(conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, Table).Scan(&exists); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		applied := map[string]appliedRow{}
		if exists {
			if applied, err = appliedVersions(ctx, conn); err != nil {
				return err
			}
		}
		known := map[string]bool{}
		for _, m := range ms {
			known[m.Version] = true
			r, ok := applied[m.Version]
			res.Migrations = append(res.Migrations, State{Migration: m, Applied: ok, AppliedAt: r.appliedAt})
			if !ok {
				res.Pending = append(res.Pending, m.File)
			}
		}
		for v := range applied {
			if !known[v] {
				res.Unknown = append(res.Unknown, v)
			}
		}
		sort.Strings(res.Unknown)
		res.Current = highest(applied)
		return verify(ms, applied)
	})
	return res, err
}
