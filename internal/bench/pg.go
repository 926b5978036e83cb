package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/embeddedpg"
)

// database is the benchmark's private PostgreSQL server.
type database struct {
	srv   *embeddedpg.Server
	dir   string
	url   string
	pgss  bool // pg_stat_statements is loaded
	extra map[string]string
}

// startDatabase starts an embedded PostgreSQL with default settings, plus
// pg_stat_statements when the extension is installed, and autovacuum off:
// an automatic ANALYZE in the middle of a cell would hand the planner
// statistics the matrix means to run without.
func startDatabase(ctx context.Context, trackAll bool, progress io.Writer) (*database, error) {
	dir, err := os.MkdirTemp("", "tasker-bench-")
	if err != nil {
		return nil, err
	}
	db := &database{dir: dir}
	settings := map[string]string{"autovacuum": "off"}
	if pgssInstalled() {
		settings["shared_preload_libraries"] = "pg_stat_statements"
		settings["pg_stat_statements.max"] = "1000"
		if trackAll {
			settings["pg_stat_statements.track"] = "all"
		}
		db.pgss = true
	}
	db.extra = settings
	srv, err := embeddedpg.Start(ctx, embeddedpg.Options{DataDir: filepath.Join(dir, "data"), Settings: settings})
	if err != nil && db.pgss {
		fmt.Fprintf(progress, "bench: postgres did not start with pg_stat_statements (%v); retrying without it\n", err)
		os.RemoveAll(filepath.Join(dir, "data"))
		db.pgss, db.extra = false, map[string]string{"autovacuum": "off"}
		srv, err = embeddedpg.Start(ctx, embeddedpg.Options{DataDir: filepath.Join(dir, "data"), Settings: db.extra})
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	db.srv = srv
	if err := srv.EnsureDatabase(ctx, "tasker_bench"); err != nil {
		db.stop()
		return nil, err
	}
	db.url = srv.URL("tasker_bench")
	if db.pgss {
		if err := db.exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			db.pgss = false
		}
	}
	return db, nil
}

func (db *database) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if db.srv != nil {
		_ = db.srv.Stop(ctx)
	}
	os.RemoveAll(db.dir)
}

func (db *database) exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// pgssInstalled reports whether pg_stat_statements ships with the server
// binaries embeddedpg will run (its library next to postgres' lib dir).
func pgssInstalled() bool {
	var dirs []string
	if p, err := exec.LookPath("postgres"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Join(filepath.Dir(filepath.Dir(r)), "lib"))
		}
	}
	more, _ := filepath.Glob("/usr/lib/postgresql/*/lib")
	dirs = append(dirs, more...)
	dirs = append(dirs, "/usr/local/pgsql/lib", "/usr/local/lib/postgresql")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_stat_statements.so")); err == nil {
			return true
		}
	}
	return false
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs       int
	CPUModel   string
	Memory     string
	GoVersion  string
	OS         string
	PGVersion  string
	Source     string      // git commit of the working tree, "+dirty" when modified
	NonDefault [][2]string // settings not at their built-in default
	Key        [][2]string // settings that matter for these numbers
}

func describe(ctx context.Context, url string) (machine, error) {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Source = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--", "sql", "internal", "cmd", ":!internal/bench", ":!internal/cli/bench").Output(); err == nil && len(st) > 0 {
			m.Source += fmt.Sprintf(" + uncommitted changes (%d files under sql/, internal/, cmd/)", strings.Count(string(st), "\n"))
		}
	}
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return m, err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&m.PGVersion); err != nil {
		return m, err
	}
	rows, err := conn.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings
		WHERE source NOT IN ('default', 'override') AND name NOT IN ('port', 'data_directory', 'config_file', 'hba_file', 'ident_file')
		ORDER BY name`)
	if err != nil {
		return m, err
	}
	for rows.Next() {
		var kv [2]string
		if err := rows.Scan(&kv[0], &kv[1]); err != nil {
			return m, err
		}
		m.NonDefault = append(m.NonDefault, kv)
	}
	if err := rows.Err(); err != nil {
		return m, err
	}
	rows, err = conn.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings
		WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'fsync', 'synchronous_commit',
		               'wal_level', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'jit', 'max_connections',
		               'random_page_cost', 'full_page_writes', 'wal_sync_method', 'plan_cache_mode')
		ORDER BY name`)
	if err != nil {
		return m, err
	}
	for rows.Next() {
		var kv [2]string
		if err := rows.Scan(&kv[0], &kv[1]); err != nil {
			return m, err
		}
		m.Key = append(m.Key, kv)
	}
	return m, rows.Err()
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tableStats is what the planner knew about one table, and whether
// anything analysed it.
type tableStats struct {
	Table     string
	RelTuples float64 // pg_class.reltuples; -1: never vacuumed or analysed
	Columns   int     // columns with pg_statistic rows
	Analyses  int64   // analyze_count + autoanalyze_count
	LastAuto  string  // last_autoanalyze, "" when never
}

// statsState reads the planner's view of the engine's main tables.
func (db *database) statsState(ctx context.Context) ([]tableStats, error) {
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT c.relname, c.reltuples,
			(SELECT count(*) FROM pg_stats s WHERE s.schemaname = 'public' AND s.tablename = c.relname)::int,
			u.analyze_count + u.autoanalyze_count, coalesce(to_char(u.last_autoanalyze, 'HH24:MI:SS'), '')
		FROM pg_class c JOIN pg_stat_user_tables u ON u.relid = c.oid
		WHERE c.relname IN ('tasker_tasks', 'tasker_steps', 'tasker_step_edges', 'tasker_transitions')
		ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tableStats, error) {
		var t tableStats
		err := r.Scan(&t.Table, &t.RelTuples, &t.Columns, &t.Analyses, &t.LastAuto)
		return t, err
	})
}
