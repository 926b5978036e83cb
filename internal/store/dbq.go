package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// dbq runs the queries sqlc generates from sql/queries into dbgen (see
// sqlc.yaml); each method takes the pool or transaction to run on.
var dbq = dbgen.New()

// pipeline runs several dbgen methods in one round trip (a pgx.Batch),
// still binding parameters and scanning rows with the generated code.
//
// Each queued call runs twice: first against a recorder that captures the
// statement the method sends, then, once the batch is sent, against that
// statement's results. Every dbgen method makes exactly one call on its
// DBTX, so the two line up. A call may therefore assign its results twice
// (zero values on the first run): it must assign, not accumulate.
type pipeline struct {
	batch pgx.Batch
	calls []func(dbgen.DBTX) error
}

// queue adds call, which must run exactly one dbgen method on db and
// return its error (it may turn pgx.ErrNoRows into nil).
func (p *pipeline) queue(call func(db dbgen.DBTX) error) {
	var r recorder
	if err := call(&r); !errors.Is(err, errRecorded) || r.n != 1 {
		panic("store: a pipelined call must run exactly one dbgen method")
	}
	p.batch.Queue(r.sql, r.args...)
	p.calls = append(p.calls, call)
}

// send runs the queued statements in one round trip and hands each call its
// results, in order. Without explicit BEGIN and COMMIT the statements run as
// one implicit transaction. After an error the pipeline stops; the pool
// discards a connection released inside a transaction, so nothing leaks.
func (p *pipeline) send(ctx context.Context, db interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}) error {
	br := db.SendBatch(ctx, &p.batch)
	for _, call := range p.calls {
		if err := call(replay{br}); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

var errRecorded = errors.New("store: statement recorded for a pipeline")

// recorder is a dbgen.DBTX that captures the statement instead of running it.
type recorder struct {
	sql  string
	args []any
	n    int
}

func (r *recorder) record(sql string, args []any) {
	r.sql, r.args = sql, args
	r.n++
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.record(sql, args)
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.record(sql, args)
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.record(sql, args)
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

// replay is a dbgen.DBTX that reads the next result of a sent batch.
type replay struct{ br pgx.BatchResults }

func (r replay) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) { return r.br.Exec() }
func (r replay) Query(context.Context, string, ...any) (pgx.Rows, error)         { return r.br.Query() }
func (r replay) QueryRow(context.Context, string, ...any) pgx.Row                { return r.br.QueryRow() }
