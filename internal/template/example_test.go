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
