package migrate_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exists(t *testing.T, conn *pgx.Conn, relation string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", relation).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func recorded(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version FROM tasker_schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := migrate.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].File != "0001_schema.sql" || ms[0].Version != "0001" || ms[0].Name != "schema" {
		t.Fatalf("unexpected migrations: %+v", ms)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i-1].File >= ms[i].File {
			t.Errorf("not in order: %s before %s", ms[i-1].File, ms[i].File)
		}
	}
}

func TestUpAppliesAllThenNothing(t *testing.T) {
	ms, err := migrate.Load()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, m := range ms {
		files = append(files, m.File)
	}
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()

	began := time.Now()
	res, err := migrate.Up(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("applied %d migrations in %v", len(res.Applied), time.Since(began).Round(time.Millisecond))
	if !slices.Equal(res.Applied, files) {
		t.Errorf("Applied = %v, want %v", res.Applied, files)
	}
	if want := ms[len(ms)-1].Version; res.Current != want {
		t.Errorf("Current = %q, want %q", res.Current, want)
	}
	if !exists(t, conn, "tasker_tasks") {
		t.Error("tasker_tasks missing")
	}

	res, err = migrate.Up(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || res.Current != ms[len(ms)-1].Version {
		t.Errorf("second run: %+v, want nothing applied", res)
	}

	st, err := migrate.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pending) != 0 || len(st.Unknown) != 0 || st.Current != res.Current || len(st.Migrations) != len(ms) {
		t.Errorf("Status = %+v", st)
	}
	for _, m := range st.Migrations {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("%s: applied %v at %v", m.File, m.Applied, m.AppliedAt)
		}
	}
}

// synthetic migrations: a PL/pgSQL body with semicolons and dollar quotes
// must run as written; the sleep makes concurrent migrators overlap.
func synthetic() fstest.MapFS {
	return fstest.MapFS{
		"migrations/0001_first.sql": {Data: []byte(`
CREATE TABLE t_one (id int PRIMARY KEY, note text);
INSERT INTO t_one VALUES (1, 'a;b');
SELECT pg_sleep(0.2);
`)},
		"migrations/0002_function.sql": {Data: []byte(`
CREATE FUNCTION t_bump(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    r int;
BEGIN
    r := n + 1; -- a comment; with a semicolon
    RETURN r;
END;
$$;
CREATE TABLE t_two (id int);
`)},
		"migrations/README.md": {Data: []byte("ignored")},
	}
}

func TestConcurrentMigrators(t *testing.T) {
	url := pgtest.EmptyURL(t)
	ctx := context.Background()
	const n = 4
	results := make([]migrate.Result, n)
	errs := make([]error, n)
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, url)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = migrate.Up(ctx, conns[i], migrate.WithFS(synthetic()))
		}()
	}
	close(start)
	wg.Wait()

	var all []string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if results[i].Current != "0002" {
			t.Errorf("migrator %d: Current = %q", i, results[i].Current)
		}
		all = append(all, results[i].Applied...)
	}
	slices.Sort(all)
	if want := []string{"0001_first.sql", "0002_function.sql"}; !slices.Equal(all, want) {
		t.Errorf("applied across migrators: %v, want each of %v exactly once", all, want)
	}
	conn := conns[0]
	if got := recorded(t, conn); !slices.Equal(got, []string{"0001", "0002"}) {
		t.Errorf("recorded %v", got)
	}
	var bumped int
	if err := conn.QueryRow(ctx, "SELECT t_bump(41)").Scan(&bumped); err != nil || bumped != 42 {
		t.Errorf("t_bump(41) = %d, %v", bumped, err)
	}
	var note string
	if err := conn.QueryRow(ctx, "SELECT note FROM t_one").Scan(&note); err != nil || note != "a;b" {
		t.Errorf("note = %q, %v", note, err)
	}
	// No advisory lock is left behind.
	var locks int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Errorf("%d advisory locks held after migrating", locks)
	}
}

func TestFailingMigrationRollsBack(t *testing.T) {
	fsys := synthetic()
	fsys["migrations/0003_broken.sql"] = &fstest.MapFile{Data: []byte(`
CREATE TABLE t_three (id int);
INSERT INTO t_three VALUES (1);
INSERT INTO no_such_table VALUES (1);
`)}
	fsys["migrations/0004_after.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE t_four (id int);`)}
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()

	res, err := migrate.Up(ctx, conn, migrate.WithFS(fsys))
	if err == nil {
		t.Fatal("Up succeeded with a broken migration")
	}
	if !strings.Contains(err.Error(), "0003_broken.sql") || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("error does not name the file and cause: %v", err)
	}
	if !slices.Equal(res.Applied, []string{"0001_first.sql", "0002_function.sql"}) || res.Current != "0002" {
		t.Errorf("partial result = %+v", res)
	}
	if exists(t, conn, "t_three") {
		t.Error("t_three exists: the failed migration was not rolled back")
	}
	if exists(t, conn, "t_four") {
		t.Error("t_four exists: a migration after the failure ran")
	}
	if !exists(t, conn, "t_two") {
		t.Error("t_two missing: migrations before the failure must stay applied")
	}
	if got := recorded(t, conn); !slices.Equal(got, []string{"0001", "0002"}) {
		t.Errorf("recorded %v, want [0001 0002]", got)
	}

	// Fixing the file lets the next run continue where it stopped.
	fsys["migrations/0003_broken.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE t_three (id int);`)}
	res, err = migrate.Up(ctx, conn, migrate.WithFS(fsys))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Applied, []string{"0003_broken.sql", "0004_after.sql"}) || res.Current != "0004" {
		t.Errorf("after fix: %+v", res)
	}
}

func TestChecksumMismatch(t *testing.T) {
	conn := connect(t, pgtest.EmptyURL(t))
	ctx := context.Background()
	fsys := synthetic()
	if _, err := migrate.Up(ctx, conn, migrate.WithFS(fsys)); err != nil {
		t.Fatal(err)
	}
	fsys["migrations/0002_function.sql"] = &fstest.MapFile{Data: append(fsys["migrations/0002_function.sql"].Data, "\n-- edited\n"...)}
	fsys["migrations/0003_new.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE t_new (id int);`)}

	_, err := migrate.Up(ctx, conn, migrate.WithFS(fsys))
	if !errors.Is(err, migrate.ErrChecksumMismatch) || !strings.Contains(err.Error(), "0002_function.sql") {
		t.Fatalf("err = %v, want a checksum mismatch naming 0002_function.sql", err)
	}
	if exists(t, conn, "t_new") {
		t.Error("a pending migration ran despite the mismatch")
	}
	if _, err := migrate.Status(ctx, conn, migrate.WithFS(fsys)); !errors.Is(err, migrate.ErrChecksumMismatch) {
		t.Errorf("Status err = %v, want ErrChecksumMismatch", err)
	}
}

func TestStatus(t *testing.T) {
	url := pgtest.EmptyURL(t)
	conn := connect(t, url)
	ctx := context.Background()

	st, err := migrate.Status(ctx, conn, migrate.WithFS(synthetic()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "" || !slices.Equal(st.Pending, []string{"0001_first.sql", "0002_function.sql"}) {
		t.Errorf("fresh database: %+v", st)
	}
	if exists(t, conn, "tasker_schema_migrations") {
		t.Error("Status created the migrations table")
	}

	fsys := synthetic()
	fsys["migrations/0003_more.sql"] = &fstest.MapFile{Data: []byte(`SELECT 1;`)}
	if _, err := migrate.UpURL(ctx, url, migrate.WithFS(fsys)); err != nil {
		t.Fatal(err)
	}
	// An older build (without 0003) sees a newer database.
	st, err = migrate.StatusURL(ctx, url, migrate.WithFS(synthetic()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != "0003" || len(st.Pending) != 0 || !slices.Equal(st.Unknown, []string{"0003"}) {
		t.Errorf("older build's status: %+v", st)
	}
}

func TestUpWithPool(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	res, err := migrate.Up(ctx, pool, migrate.WithFS(synthetic()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 2 {
		t.Errorf("Applied = %v", res.Applied)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"bad name": {"1-first.sql": {Data: []byte("SELECT 1")}},
		"duplicate version": {
			"0001_a.sql": {Data: []byte("SELECT 1")},
			"0001_b.sql": {Data: []byte("SELECT 1")},
		},
	} {
		if _, err := migrate.Load(migrate.WithFS(fsys)); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
	ms, err := migrate.Load(migrate.WithFS(fstest.MapFS{"0002_b.sql": {Data: []byte("x")}, "0001_a.sql": {Data: []byte("y")}}))
	if err != nil || len(ms) != 2 || ms[0].File != "0001_a.sql" {
		t.Errorf("files at the root: %+v, %v", ms, err)
	}
}
