package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/sdk/contract"
)

func ExampleRegistry_Register() {
	reg := sdk.NewRegistry()
	err := reg.Register("ecommerce.validate_order", func(ctx context.Context, in sdk.Input) (any, error) {
		var order struct {
			Items []struct {
				SKU      string  `json:"sku"`
				Quantity int     `json:"quantity"`
				Price    float64 `json:"price"`
			} `json:"items"`
		}
		if err := in.Context(&order); err != nil {
			return nil, sdk.Permanent(err)
		}
		total := 0.0
		for _, it := range order.Items {
			total += float64(it.Quantity) * it.Price
		}
		return map[string]any{"total": total, "items": len(order.Items)}, nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	payload, _ := json.Marshal(contract.Payload{
		Tasker:  contract.Meta{Handler: "ecommerce.validate_order", Step: "validate_order", Attempt: 1},
		Context: json.RawMessage(`{"items":[{"sku":"A","quantity":2,"price":9.5}]}`),
	})
	fmt.Println(string(sdk.Run(context.Background(), reg, payload)))
	fmt.Println(reg.Register("ecommerce.validate_order", nil) != nil)
	// Output:
	// {"items":1,"total":19}
	// true
}

func ExamplePermanent() {
	reg := sdk.NewRegistry()
	_ = reg.Register("payments.charge", func(ctx context.Context, in sdk.Input) (any, error) {
		if in.ConfigString("mode", "") == "declined" {
			return nil, sdk.Permanent(sdk.WithCode(errors.New("card declined"), "card_declined"))
		}
		return nil, sdk.RetryAfter(errors.New("gateway busy"), 30*time.Second)
	})
	for _, mode := range []string{"declined", "busy"} {
		payload, _ := json.Marshal(contract.Payload{
			Tasker: contract.Meta{Handler: "payments.charge", Attempt: 1},
			Config: json.RawMessage(`{"mode":"` + mode + `"}`),
		})
		fmt.Println(string(sdk.Run(context.Background(), reg, payload)))
	}
	// Output:
	// {"tasker_error":{"message":"card declined","permanent":true,"retry_after_seconds":0,"code":"card_declined"}}
	// {"tasker_error":{"message":"gateway busy","permanent":false,"retry_after_seconds":30,"code":""}}
}

func ExamplePending() {
	// The step waits (holding no in-flight slot) until its callback token
	// is used, or an hour passes.
	h := sdk.HandlerFunction(func(ctx context.Context, in sdk.Input) (any, error) {
		fmt.Println("notify the approver with token", in.CallbackToken())
		return sdk.Pending(time.Hour), nil
	})
	payload, _ := json.Marshal(contract.Payload{Tasker: contract.Meta{Handler: "lambda:approvals", Attempt: 1, CallbackToken: "tok"}})
	out, _ := h(context.Background(), payload)
	fmt.Println(string(out))
	// Output:
	// notify the approver with token tok
	// {"tasker_pending":{"timeout_seconds":3600}}
}

func ExampleInput_IdempotencyKey() {
	reg := sdk.NewRegistry()
	_ = reg.Register("payments.charge", func(ctx context.Context, in sdk.Input) (any, error) {
		// Send the key with the request: the payment API answers a retry of a
		// request whose answer was lost without charging twice.
		return map[string]any{"key": in.IdempotencyKey(), "attempt": in.Attempt()}, nil
	})
	taskID := uuid.MustParse("0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70")
	for attempt := 1; attempt <= 2; attempt++ {
		payload, _ := json.Marshal(contract.Payload{Tasker: contract.Meta{
			Handler: "payments.charge", TaskID: taskID, Step: "charge", Attempt: attempt,
			IdempotencyKey: contract.IdempotencyKey(taskID, "charge", 0),
		}})
		fmt.Println(string(sdk.Run(context.Background(), reg, payload)))
	}
	// Output:
	// {"attempt":1,"key":"0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge"}
	// {"attempt":2,"key":"0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70/charge"}
}
