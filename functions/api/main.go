// Command api is the API Lambda: API Gateway HTTP API (payload v2) events
// served by Tasker's HTTP API (internal/api). See internal/lambdaapp.
package main

import "github.com/taskerhq/tasker/internal/lambdaapp"

func main() { lambdaapp.Main(lambdaapp.API) }
