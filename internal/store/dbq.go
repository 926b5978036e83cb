package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// dbq runs the queries sqlc generates from sql/queries into dbgen (see
// sqlc.yaml); each method takes the pool or transaction to run on.
var dbq = dbgen.New()

// Statements that must share one round trip or one snapshot are pipelined
// on a pgx.Batch, which sqlc's methods (one round trip each) cannot join.
// queueRows and queueRow queue dbgen's exported SQL and collect the result
// into dbgen's row types, whose fields sqlc generates in select-list order,
// so the columns are still typed and scanned by generated code.

// queueRows queues query and collects all its rows into *into.
func queueRows[T any](b *pgx.Batch, into *[]T, scan pgx.RowToFunc[T], query string, args ...any) {
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		*into, err = pgx.CollectRows(rows, scan)
		return err
	})
}

// queueRow queues query, which returns exactly one row, into *into.
func queueRow[T any](b *pgx.Batch, into *T, scan pgx.RowToFunc[T], query string, args ...any) {
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		*into, err = pgx.CollectExactlyOneRow(rows, scan)
		return err
	})
}

// describeExec runs queries as unnamed statements planned for their actual
// parameters (pgx.QueryExecModeCacheDescribe) rather than as prepared
// statements that may settle on one generic plan: for queries with optional
// filters, where the NULL branches should fold away.
type describeExec struct{ db dbgen.DBTX }

func (d describeExec) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return d.db.Exec(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

func (d describeExec) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return d.db.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

func (d describeExec) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return d.db.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}
