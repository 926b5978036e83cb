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
//
// SQL functions live in their own files (sql/functions, embedded as
// tasksql.Functions), not in migrations: after the migrations, Up applies
// every function file, in lexical order, in one transaction under the same
// lock, whenever their combined checksum differs from the one recorded. Each
// file is idempotent (CREATE OR REPLACE), so changing a function is an edit
// of its file. See docs/architecture.md, "Schema".
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"path"
	"regexp"
	"slices"
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

// FunctionsTable records the checksum of the function files last applied.
const FunctionsTable = "tasker_schema_functions"

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

// Function is one file of SQL functions (sql/functions).
type Function struct {
	File     string // "010_readiness.sql"
	Checksum string // hex SHA-256 of the file
	SQL      string
}

// Result reports what Up did.
type Result struct {
	// Applied lists the files applied by this call, in order.
	Applied []string
	// Current is the highest applied version after the call ("" if none).
	Current string
	// Functions lists the function files applied by this call: all of them
	// when any changed, none when the database already had them.
	Functions []string
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
	// FunctionsCurrent is true when the database holds exactly this
	// build's function files.
	FunctionsCurrent bool
}

// Option configures Up and Status.
type Option func(*config)

type config struct {
	fsys       fs.FS
	functions  fs.FS               // nil: apply no function files
	superseded map[string][]string // file → earlier checksums accepted
}

// WithFS reads migrations from fsys instead of tasksql.Migrations. Files
// named NNNN_name.sql are taken from the root of fsys, or from its
// "migrations" directory if the root has none. Unless WithFunctions follows,
// no function files are applied.
func WithFS(fsys fs.FS) Option {
	return func(c *config) { c.fsys, c.functions, c.superseded = fsys, nil, nil }
}

// WithFunctions applies the *.sql files at the root of fsys, or of its
// "functions" directory, after the migrations; nil applies none.
func WithFunctions(fsys fs.FS) Option { return func(c *config) { c.functions = fsys } }

func newConfig(opts []Option) config {
	c := config{fsys: tasksql.Migrations, functions: tasksql.Functions, superseded: Superseded(tasksql.MigrationSums)}
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
	dir, entries, err := sqlDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
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

// sqlDir returns the root of fsys if it holds .sql files, else its
// directory sub.
func sqlDir(fsys fs.FS, sub string) (string, []fs.DirEntry, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "", nil, err
	}
	if !hasSQL(entries) {
		if subEntries, err := fs.ReadDir(fsys, sub); err == nil {
			return sub, subEntries, nil
		}
	}
	return ".", entries, nil
}

func hasSQL(entries []fs.DirEntry) bool {
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
			return true
		}
	}
	return false
}

// LoadFunctions reads the function files, in order. With no options it
// reads the embedded tasksql.Functions.
func LoadFunctions(opts ...Option) ([]Function, error) {
	return loadFunctions(newConfig(opts).functions)
}

func loadFunctions(fsys fs.FS) ([]Function, error) {
	if fsys == nil {
		return nil, nil
	}
	dir, entries, err := sqlDir(fsys, "functions")
	if err != nil {
		return nil, fmt.Errorf("migrate: read functions: %w", err)
	}
	var out []Function
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Function{File: e.Name(), Checksum: hex.EncodeToString(sum[:]), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out, nil
}

// Checksum identifies a set of migrations and function files (their names
// and contents); test helpers name template databases with it.
func Checksum(ms []Migration, fns []Function) string {
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\x00%s\x00", m.File, m.Checksum)
	}
	return functionsChecksum(h, fns)
}

func functionsChecksum(h hash.Hash, fns []Function) string {
	for _, f := range fns {
		fmt.Fprintf(h, "f\x00%s\x00%s\x00", f.File, f.Checksum)
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
	fns, err := loadFunctions(cfg.functions)
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
		if err := verify(ms, applied, cfg.superseded); err != nil {
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
		if len(unknown(ms, applied)) > 0 {
			// A newer build migrated this database: its functions may
			// rely on its schema, so an older build leaves them alone.
			return nil
		}
		res.Functions, err = applyFunctions(ctx, conn, fns)
		return err
	})
	return res, err
}

// applyFunctions runs every function file in one transaction unless the
// database already holds exactly this set. The caller holds the lock.
func applyFunctions(ctx context.Context, conn *pgx.Conn, fns []Function) ([]string, error) {
	if len(fns) == 0 {
		return nil, nil
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+FunctionsTable+` (
	singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return nil, fmt.Errorf("migrate: create %s: %w", FunctionsTable, err)
	}
	sum := functionsChecksum(sha256.New(), fns)
	if cur, err := functionsApplied(ctx, conn); err != nil || cur == sum {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: functions: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	var files []string
	for _, f := range fns {
		if _, err := tx.Conn().PgConn().Exec(ctx, f.SQL).ReadAll(); err != nil {
			return nil, fmt.Errorf("migrate: functions/%s: %w", f.File, describe(err))
		}
		files = append(files, f.File)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+FunctionsTable+` (checksum, applied_at) VALUES ($1, now())
ON CONFLICT (singleton) DO UPDATE SET checksum = excluded.checksum, applied_at = excluded.applied_at`, sum); err != nil {
		return nil, fmt.Errorf("migrate: functions: record: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("migrate: functions: commit: %w", err)
	}
	return files, nil
}

// functionsApplied returns the recorded checksum of the function files, or
// "" when none were applied.
func functionsApplied(ctx context.Context, conn *pgx.Conn) (string, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, FunctionsTable).Scan(&exists); err != nil || !exists {
		return "", err
	}
	var sum string
	err := conn.QueryRow(ctx, `SELECT checksum FROM `+FunctionsTable).Scan(&sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("migrate: read %s: %w", FunctionsTable, err)
	}
	return sum, nil
}

// unknown lists applied versions that have no migration here.
func unknown(ms []Migration, applied map[string]appliedRow) []string {
	known := make(map[string]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
	}
	var out []string
	for v := range applied {
		if !known[v] {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
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

func verify(ms []Migration, applied map[string]appliedRow, superseded map[string][]string) error {
	var bad []string
	for _, m := range ms {
		if r, ok := applied[m.Version]; ok && r.checksum != m.Checksum && !slices.Contains(superseded[m.File], r.checksum) {
			bad = append(bad, m.File)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("migrate: %w: %s changed after it was applied (checksum differs); migrations are append-only, add a new migration instead",
			ErrChecksumMismatch, strings.Join(bad, ", "))
	}
	return nil
}

// Sum is one line of the checksum list of landed migrations.
type Sum struct {
	File       string
	Checksum   string
	Superseded bool // an earlier content some databases were migrated with
}

// ParseSums reads a checksum list: "<sha256>  <file>[ superseded]" lines,
// with # comments.
func ParseSums(list string) ([]Sum, error) {
	var out []Sum
	for i, line := range strings.Split(list, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 || len(f[0]) != 64 || (len(f) == 3 && f[2] != "superseded") {
			return nil, fmt.Errorf("migrate: checksum list line %d: want \"<sha256>  <file>[ superseded]\", got %q", i+1, line)
		}
		out = append(out, Sum{File: f[1], Checksum: f[0], Superseded: len(f) == 3})
	}
	return out, nil
}

// Superseded maps each file of a checksum list to its superseded checksums.
// The embedded list is tested (TestMigrationsImmutable), so a malformed one
// never ships; here it yields no entries.
func Superseded(list string) map[string][]string {
	sums, _ := ParseSums(list)
	out := map[string][]string{}
	for _, s := range sums {
		if s.Superseded {
			out[s.File] = append(out[s.File], s.Checksum)
		}
	}
	return out
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
	fns, err := loadFunctions(cfg.functions)
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
		for _, m := range ms {
			r, ok := applied[m.Version]
			res.Migrations = append(res.Migrations, State{Migration: m, Applied: ok, AppliedAt: r.appliedAt})
			if !ok {
				res.Pending = append(res.Pending, m.File)
			}
		}
		res.Unknown = unknown(ms, applied)
		res.Current = highest(applied)
		cur, err := functionsApplied(ctx, conn)
		if err != nil {
			return err
		}
		res.FunctionsCurrent = cur == functionsChecksum(sha256.New(), fns)
		return verify(ms, applied, cfg.superseded)
	})
	return res, err
}
