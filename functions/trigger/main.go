// Command trigger is the trigger Lambda: S3 notifications and EventBridge
// events start the workflows whose triggers they match. See
// internal/trigger and internal/lambdaapp.
package main

import "github.com/taskerhq/tasker/internal/lambdaapp"

func main() { lambdaapp.Main(lambdaapp.Trigger) }
