// Command migrate is the CloudFormation custom resource
// (Custom::TaskerMigration) that applies the database migrations on every
// create and update of the stack and always answers CloudFormation. See
// internal/lambdaapp.
package main

import "github.com/taskerhq/tasker/internal/lambdaapp"

func main() { lambdaapp.Main(lambdaapp.Migrate) }
