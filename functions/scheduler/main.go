// Command scheduler is the scheduler Lambda: SQS batches of wake-ups and
// Lambda destination records (answered with batchItemFailures), and the
// EventBridge Scheduled Event that runs the sweep. See internal/lambdaapp.
package main

import "github.com/taskerhq/tasker/internal/lambdaapp"

func main() { lambdaapp.Main(lambdaapp.Scheduler) }
