// Command echolambda is a Go Lambda function for testenv's own tests: it
// returns its event with the function name and the value of ECHO_EXTRA.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func main() {
	lambda.Start(func(ctx context.Context, event json.RawMessage) (map[string]any, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		var requestID string
		if lc != nil {
			requestID = lc.AwsRequestID
		}
		return map[string]any{
			"event":      event,
			"function":   lambdacontext.FunctionName,
			"extra":      os.Getenv("ECHO_EXTRA"),
			"request_id": requestID,
		}, nil
	})
}
