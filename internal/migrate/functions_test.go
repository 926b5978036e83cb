package migrate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
	tasksql "github.com/taskerhq/tasker/sql"
)

// TestMigrationsImmutable holds every landed migration to its line in
// sql/migrations.sum, and every migration file to having a line there.
func TestMigrationsImmutable(t *testing.T) {
	sums, err := migrate.ParseSums(tasksql.MigrationSums)
	if err != nil {
		t.Fatal(err)
	}
	current := map[string]string{}
	for _, s := range sums {
		if s.Superseded {
			continue
		}
		if _, dup := current[s.File]; dup {
			t.Errorf("sql/migrations.sum: %s has two current lines; mark the older one superseded only if it really landed", s.File)
		}
		current[s.File] = s.Checksum
	}
	files, err := fs.Glob(tasksql.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, f := range files {
		b, err := fs.ReadFile(tasksql.Migrations, f)
		if err != nil {
			t.Fatal(err)
		}
		name := f[len("migrations/"):]
		onDisk[name] = true
		sum := sha256.Sum256(b)
		want, ok := current[name]
		switch {
		case !ok:
			t.Errorf("%s has no line in sql/migrations.sum: append `%x  %s`", name, sum, name)
		case want != hex.EncodeToString(sum[:]):
			t.Errorf("%s changed after it landed (sql/migrations.sum has %s, the file hashes to %x): landed migrations never change; revert it and put the change in a new migration or in sql/functions", name, want, sum)
		}
	}
	for f := range current {
		if !onDisk[f] {
			t.Errorf("%s is in sql/migrations.sum but missing from sql/migrations: landed migrations are never removed", f)
		}
	}
}

func TestParseSumsRejectsMalformedLines(t *testing.T) {
	for _, list := range []string{"abc  0001_a.sql", "0001_a.sql", sixtyFour + "  0001_a.sql  old"} {
		if _, err := migrate.ParseSums(list); err == nil {
			t.Errorf("ParseSums(%q) accepted a malformed line", list)
		}
	}
}

var sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func functionFS(body string) fstest.MapFS {
	return fstest.MapFS{
		"010_answer.sql": {Data: []byte("CREATE OR REPLACE FUNCTION t_answer() RETURNS int LANGUAGE sql AS $$ SELECT " + body + " $$;")},
		"020_double.sql": {Data: []byte("CREATE OR REPLACE FUNCTION t_double() RETURNS int LANGUAGE sql AS $$ SELECT t_answer() * 2 $$;")},
	}
}

func TestFunctionsAppliedAfterMigrationsOnlyWhenChanged(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()
	answer := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT t_double()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	up := func(body string) migrate.Result {
		t.Helper()
		res, err := migrate.Up(ctx, conn, migrate.WithFS(synthetic()), migrate.WithFunctions(functionFS(body)))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := up("21"); !slices.Equal(res.Functions, []string{"010_answer.sql", "020_double.sql"}) || answer() != 42 {
		t.Fatalf("first Up: %+v, answer %d", res, answer())
	}
	if res := up("21"); len(res.Functions) != 0 || len(res.Applied) != 0 {
		t.Errorf("unchanged Up reapplied: %+v", res)
	}
	if res := up("50"); len(res.Functions) != 2 || answer() != 100 {
		t.Errorf("changed function not reapplied: %+v, answer %d", res, answer())
	}
	st, err := migrate.Status(ctx, conn, migrate.WithFS(synthetic()), migrate.WithFunctions(functionFS("50")))
	if err != nil || !st.FunctionsCurrent {
		t.Errorf("Status = %+v, %v; want functions current", st, err)
	}
}

func TestBrokenFunctionFileChangesNothing(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()
	if _, err := migrate.Up(ctx, conn, migrate.WithFS(synthetic()), migrate.WithFunctions(functionFS("21"))); err != nil {
		t.Fatal(err)
	}
	broken := functionFS("50")
	broken["030_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE OR REPLACE FUNCTION t_broken( RETURNS int")}
	_, err := migrate.Up(ctx, conn, migrate.WithFS(synthetic()), migrate.WithFunctions(broken))
	if err == nil || !strings.Contains(err.Error(), "030_broken.sql") {
		t.Fatalf("err = %v, want one naming 030_broken.sql", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT t_double()").Scan(&n); err != nil || n != 42 {
		t.Errorf("after a failed function file: t_double() = %d, %v; want the old 42 (one transaction)", n, err)
	}
}

// An older build must not overwrite the functions of a newer one, whose
// schema they may need.
func TestOlderBuildLeavesNewerFunctions(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()
	newer := synthetic()
	newer["migrations/0099_newer.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE t_newer (id int);")}
	if _, err := migrate.Up(ctx, conn, migrate.WithFS(newer), migrate.WithFunctions(functionFS("50"))); err != nil {
		t.Fatal(err)
	}
	res, err := migrate.Up(ctx, conn, migrate.WithFS(synthetic()), migrate.WithFunctions(functionFS("21")))
	if err != nil || len(res.Functions) != 0 {
		t.Fatalf("older Up = %+v, %v; want no functions applied", res, err)
	}
}

// Databases migrated by a pre-release 0006 are accepted (its earlier
// checksums are listed as superseded) and converge on the function files.
func TestSupersededChecksumAccepted(t *testing.T) {
	t.Parallel()
	url := pgtest.EmptyURL(t)
	conn := connect(t, url)
	ctx := context.Background()
	if _, err := migrate.Up(ctx, conn); err != nil {
		t.Fatal(err)
	}
	old := migrate.Superseded(tasksql.MigrationSums)["0006_fast_readiness.sql"]
	if len(old) == 0 {
		t.Fatal("no superseded checksum for 0006 in sql/migrations.sum")
	}
	if _, err := conn.Exec(ctx, "UPDATE tasker_schema_migrations SET checksum = $1 WHERE version = '0006'", old[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, conn); err != nil {
		t.Fatalf("Up on a database migrated by a superseded 0006: %v", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE tasker_schema_migrations SET checksum = $1 WHERE version = '0006'", sixtyFour); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, conn); !errors.Is(err, migrate.ErrChecksumMismatch) {
		t.Fatalf("unknown checksum: err = %v, want ErrChecksumMismatch", err)
	}
}

// A database whose tasker_scheduler_pass and tasker_sweep_scan still return
// TABLE (...), as before migration 0009 gave them row types, gets the new
// ones: CREATE OR REPLACE cannot change a return type, so the function file
// drops the old ones first.
func TestFunctionsReplaceOldReturnTypes(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()
	before := fstest.MapFS{}
	files, err := fs.Glob(tasksql.Migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f >= "migrations/0009" {
			continue
		}
		b, err := fs.ReadFile(tasksql.Migrations, f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = &fstest.MapFile{Data: b}
	}
	old := fstest.MapFS{"020_scheduler.sql": {Data: []byte(`
CREATE FUNCTION tasker_scheduler_pass(
    p_now timestamptz, p_actor text, p_task_ids uuid[],
    p_step_ids uuid[], p_attempts int[], p_ok boolean[], p_results jsonb[], p_errors jsonb[],
    p_permanent boolean[], p_retry_after_ms bigint[], p_reasons text[],
    p_claim_limit int, p_global_cap int, p_grace_seconds int)
RETURNS TABLE (kind text, task_id uuid) LANGUAGE sql AS $$ SELECT 'old', NULL::uuid $$;
CREATE FUNCTION tasker_sweep_scan(
    p_now timestamptz, p_limit int, p_after uuid, p_scan int, p_self text, p_stale_before timestamptz)
RETURNS TABLE (kind text, task_id uuid) LANGUAGE sql AS $$ SELECT 'old', NULL::uuid $$;`)}}
	if _, err := migrate.Up(ctx, conn, migrate.WithFS(before), migrate.WithFunctions(old)); err != nil {
		t.Fatal(err)
	}
	res, err := migrate.Up(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) == 0 || res.Applied[0] != "0009_function_rows.sql" || len(res.Functions) == 0 {
		t.Fatalf("Up = %+v, want 0009 onwards and the function files applied", res)
	}
	// tasker_create_task took two more parameters and returned one more
	// column from 0010 on, and two more parameters (trigger rules and
	// conditions) from 0012 on: the old signatures are gone, not overloaded.
	var nargs []int16
	rows, err := conn.Query(ctx, "SELECT pronargs FROM pg_proc WHERE proname = 'tasker_create_task'")
	if err == nil {
		nargs, err = pgx.CollectRows(rows, pgx.RowTo[int16])
	}
	if err != nil || !slices.Equal(nargs, []int16{30}) {
		t.Errorf("tasker_create_task arities %v (%v), want [30] only", nargs, err)
	}
	for name, want := range map[string]string{
		"tasker_scheduler_pass": "tasker_scheduler_pass_row",
		"tasker_sweep_scan":     "tasker_sweep_scan_row",
	} {
		var got []string
		rows, err := conn.Query(ctx, "SELECT prorettype::regtype::text FROM pg_proc WHERE proname = $1", name)
		if err == nil {
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil || !slices.Equal(got, []string{want}) {
			t.Errorf("%s returns %v (%v), want %s only", name, got, err, want)
		}
	}
	var kind string
	if err := conn.QueryRow(ctx, "SELECT kind FROM tasker_sweep_scan(now(), 10, '00000000-0000-0000-0000-000000000000', 100, 'x', now())").Scan(&kind); err != nil || kind != "cursor" {
		t.Errorf("tasker_sweep_scan: kind %q, %v; want the cursor row", kind, err)
	}
}
