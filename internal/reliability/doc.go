// Package reliability holds Tasker's crash, duplicate, overload and
// hostile-input scenarios (issue 9; docs/reliability.md lists them with
// their last measured results). It has no production code: the scenarios
// are tests. The fast ones run with `go test ./...` (make test); the long
// ones (crash of a `tasker dev` process, database outage, 10,000-task
// overload) are behind the `soak` build tag (make soak).
package reliability
