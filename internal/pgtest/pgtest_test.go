package pgtest_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabasesAreIsolatedAndMigrated(t *testing.T) {
	var mu sync.Mutex
	names := map[string]bool{}
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.Pool(t)
			ctx := context.Background()

			var db string
			var hasTasks, hasMigrations bool
			if err := pool.QueryRow(ctx, `SELECT current_database(),
				to_regclass('tasker_tasks') IS NOT NULL,
				to_regclass('tasker_schema_migrations') IS NOT NULL`).Scan(&db, &hasTasks, &hasMigrations); err != nil {
				t.Fatal(err)
			}
			if !hasTasks || !hasMigrations {
				t.Fatalf("database %s is not migrated (tasker_tasks %v, tasker_schema_migrations %v)", db, hasTasks, hasMigrations)
			}
			mu.Lock()
			if names[db] {
				t.Errorf("database %s handed out twice", db)
			}
			names[db] = true
			mu.Unlock()

			// Each test's writes stay in its own database.
			if _, err := pool.Exec(ctx, "CREATE TABLE only_in_"+name+" (v int)"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let the sibling create its table
			other := map[string]string{"a": "b", "b": "a"}[name]
			var visible bool
			if err := pool.QueryRow(ctx, "SELECT to_regclass('only_in_"+other+"') IS NOT NULL").Scan(&visible); err != nil {
				t.Fatal(err)
			}
			if visible {
				t.Errorf("table of test %s visible in test %s", other, name)
			}
		})
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var dropped string
	t.Run("user", func(t *testing.T) {
		url := pgtest.URL(t)
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: cleanup must cope with live connections.
		if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&dropped); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dropped, "tasker_t_") || !strings.Contains(dropped, "user") {
			t.Errorf("database name %q does not name the test", dropped)
		}
	})
	began := time.Now()
	pool := pgtest.Pool(t)
	t.Logf("fresh migrated database (server already up) in %v", time.Since(began).Round(time.Millisecond))
	var exists bool
	if err := pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dropped).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", dropped)
	}
}

func TestEmptyURL(t *testing.T) {
	conn, err := pgx.Connect(context.Background(), pgtest.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("empty database has %d tables", tables)
	}
}
