package api

import (
	"net/http"

	"github.com/taskerhq/tasker/internal/graphql"
)

// POST /v1/graphql: the route's guard has authenticated the caller and
// capped the body; the GraphQL handler checks each operation's
// permissions against the same principal (internal/graphql).
func (s *server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	ctx := graphql.WithCaller(r.Context(), graphql.Caller{
		Principal: principalFrom(r.Context()), Actor: actor(r.Context()),
		IdempotencyScope: s.idempotencyScope(r.Context()), CorrelationID: correlationFrom(r.Context()),
	})
	s.graphql.ServeHTTP(w, r.WithContext(ctx))
}

// GET /v1/graphql/schema.graphqls: the GraphQL schema, public like the
// OpenAPI document beside it.
func (s *server) graphQLSchema(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(graphql.Schema)
}
