package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/sdk"
)

func TestWithEvents(t *testing.T) {
	t.Parallel()
	out, err := sdk.WithEvents(map[string]string{"order_id": "A-1"},
		sdk.Emit("order.shipped", map[string]string{"carrier": "ups"}), sdk.Emit("order.closed", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	want := `{"order_id":"A-1","tasker_events":[{"name":"order.shipped","data":{"carrier":"ups"}},{"name":"order.closed"}]}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	for _, c := range []struct {
		result any
		ev     sdk.Event
		want   string
	}{
		{nil, sdk.Emit("Shipped", nil), "dotted lower-case"},
		{nil, sdk.Emit("task.completed", nil), "lifecycle events"},
		{nil, sdk.Emit("order.shipped", []int{1}), "data must be a JSON object"},
		{nil, sdk.Emit("order.shipped", func() {}), "data must be a JSON object"},
		{[]int{1}, sdk.Emit("order.shipped", nil), "must be a JSON object"},
	} {
		_, err := sdk.WithEvents(c.result, c.ev)
		if err == nil || !strings.Contains(err.Error(), c.want) || !sdk.HandlerError(err).Permanent {
			t.Errorf("%v %+v: error %v, want a permanent error with %q", c.result, c.ev, err, c.want)
		}
	}
}

func ExampleWithEvents() {
	reg := sdk.NewRegistry()
	_ = reg.Register("orders.ship", func(ctx context.Context, in sdk.Input) (any, error) {
		// … ship the order …
		return sdk.WithEvents(map[string]string{"tracking": "1Z999"},
			sdk.Emit("order.shipped", map[string]string{"carrier": "ups"}))
	})
	out := sdk.Run(context.Background(), reg,
		[]byte(`{"tasker":{"handler":"orders.ship","step":"ship","attempt":1},"context":{}}`))
	fmt.Println(string(out))
	// Output: {"tasker_events":[{"name":"order.shipped","data":{"carrier":"ups"}}],"tracking":"1Z999"}
}
