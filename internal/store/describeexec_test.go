package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestDescribeExecKeepsTheSimpleProtocol: behind RDS Proxy the pool runs
// in the simple protocol, and the planned-per-call list query must not
// switch that connection to the extended protocol, which pins the proxy
// session; elsewhere it asks for QueryExecModeCacheDescribe.
func TestDescribeExecKeepsTheSimpleProtocol(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mode   pgx.QueryExecMode
		prefix bool
	}{
		{pgx.QueryExecModeSimpleProtocol, false},
		{pgx.QueryExecModeCacheStatement, true},
		{pgx.QueryExecModeExec, true},
	} {
		cfg, err := pgxpool.ParseConfig("postgres://u@127.0.0.1:1/d")
		if err != nil {
			t.Fatal(err)
		}
		cfg.ConnConfig.DefaultQueryExecMode = c.mode
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
		if err != nil {
			t.Fatal(err)
		}
		args := newDescribeExec(pool).args([]any{"x"})
		pool.Close()
		got := len(args) == 2 && args[0] == pgx.QueryExecModeCacheDescribe
		if got != c.prefix || args[len(args)-1] != "x" {
			t.Errorf("%v: args %v", c.mode, args)
		}
	}
}
