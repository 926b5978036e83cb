// Package sql embeds the database migrations and queries so every binary
// carries the exact schema it was built with. Import it as tasksql.
package sql

import "embed"

// Migrations holds the numbered migrations, applied in lexical order.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// MigrationSums is the checksum list of landed migrations (sha256sum
// format), append-only: see its header.
//
//go:embed migrations.sum
var MigrationSums string

// Functions holds the SQL functions, one concern per file, applied in
// lexical order after the migrations every time they change.
//
//go:embed functions/*.sql
var Functions embed.FS

// Queries holds the queries of the store, one file per concern, as written.
// sqlc compiles them into internal/store/dbgen, which is what the store
// runs; internal/store's plan-shape test reads them to find every query.
//
//go:embed queries/*.sql
var Queries embed.FS
