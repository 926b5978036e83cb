package template_test

import (
	"fmt"

	"github.com/taskerhq/tasker/internal/template"
)

func ExampleParse() {
	src := `
namespace: shop
name: checkout
version: 1.0.0
steps:
  - name: validate
    handler: shop.validate
  - name: charge
    handler: lambda:charge-card
    depends_on: [validate]
  - name: reserve
    handler: shop.reserve
    depends_on: [validate]
  - name: ship
    handler: tasker.noop
    depends_on: [charge, reserve]
`
	t, err := template.Parse("checkout.yaml", []byte(src), template.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Key())
	for i, level := range t.Levels() {
		fmt.Println(i, level)
	}
	// Output:
	// shop/checkout@1.0.0
	// 0 [validate]
	// 1 [charge reserve]
	// 2 [ship]
}

func ExampleTemplate_ApplyDefaults() {
	src := `
name: signup
context_schema:
  type: object
  properties:
    plan: {type: string, default: free}
    user:
      type: object
      properties:
        newsletter: {type: boolean, default: false}
steps:
  - {name: welcome, handler: tasker.noop}
`
	t, err := template.Parse("signup.yaml", []byte(src), template.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, err := t.ApplyDefaults([]byte(`{"user":{"email":"ada@example.com"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(ctx))
	// Output:
	// {"plan":"free","user":{"email":"ada@example.com","newsletter":false}}
}

func ExampleParseAliases() {
	aliases, err := template.ParseAliases("handler_aliases.yaml", []byte(`
Ecommerce::ValidateOrderHandler: lambda:validate-order
Ecommerce::ShipOrderHandler: shop.ship_order
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	t, err := template.Parse("order.yaml", []byte(`
name: order
step_templates:
  - {name: validate, handler_class: Ecommerce::ValidateOrderHandler}
  - {name: ship, handler_class: Ecommerce::ShipOrderHandler, depends_on_step: validate, inputs: all}
`), template.Options{HandlerAliases: aliases})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range t.Steps {
		fmt.Println(s.Name, s.Handler, s.HandlerAlias, s.Inputs)
	}
	// Output:
	// validate lambda:validate-order Ecommerce::ValidateOrderHandler []
	// ship shop.ship_order Ecommerce::ShipOrderHandler [validate]
}

// A step's rate limit: the bucket's rate and burst, and its key resolved
// from a task's context (docs/control-flow.md, "Rate limits").
func ExampleStep_ResolveRateLimitKey() {
	src := `
namespace: partners
name: sync
version: 1.0.0
steps:
  - name: push
    handler: partner.push
    rate_limit: {per_second: 0.5, key: "${context.partner}"}
`
	t, err := template.Parse("sync.yaml", []byte(src), template.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	push, _ := t.Step("push")
	key, err := push.ResolveRateLimitKey([]byte(`{"partner": "acme"}`))
	fmt.Println(push.RateLimit.PerSecond, push.RateLimit.Burst, key, err)
	_, err = push.ResolveRateLimitKey([]byte(`{}`))
	fmt.Println(err)
	// Output:
	// 0.5 1 acme <nil>
	// step push: rate_limit.key: ${context.partner} is not a string or number in the task context
}
