package pgtest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestTemplateBuildIsRaceFree builds one new template from several
// connections at once, as parallel test binaries sharing a server do.
func TestTemplateBuildIsRaceFree(t *testing.T) {
	e := get(t)
	ctx := context.Background()
	prefix := "tasker_tmplrace_" + randomHex(3) + "_"
	const n = 4
	names := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		pool, err := pgxpool.New(ctx, e.adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			names[i], errs[i] = ensureTemplate(ctx, pool, prefix)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("builder %d: %v", i, errs[i])
		}
		if names[i] != names[0] {
			t.Fatalf("builders disagree: %q vs %q", names[i], names[0])
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{
			"ALTER DATABASE " + ident(names[0]) + " WITH IS_TEMPLATE false",
			"DROP DATABASE " + ident(names[0]),
		} {
			if _, err := e.admin.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	var count int
	if err := e.admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname LIKE 'tasker\\_tmplbuild\\_%' OR datname = $1", names[0]).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Errorf("%d template/build databases, want exactly 1", count)
	}
	// A database cloned from it is migrated.
	clone := urlFor(t, e, names[0])
	pool, err := pgxpool.New(ctx, clone)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('tasker_tasks') IS NOT NULL").Scan(&ok); err != nil || !ok {
		t.Fatalf("clone not migrated: %v %v", ok, err)
	}
}

func TestReplaceDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable": "postgres://u:p@127.0.0.1:5432/x?sslmode=disable",
		"postgresql://h/":               "postgresql://h/x",
		"host=h port=5 dbname=postgres": "host=h port=5 dbname=postgres dbname=x",
	} {
		got, err := replaceDatabase(in, "x")
		if err != nil || got != want {
			t.Errorf("replaceDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
