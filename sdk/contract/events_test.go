package contract_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/sdk/contract"
)

func TestCustomEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		result  string
		names   []string
		wantErr string
	}{
		{`{"ok":true}`, nil, ""},
		{`[1,2]`, nil, ""},
		{`{"tasker_events":null}`, nil, ""},
		{`{"id":1,"tasker_events":[{"name":"order.shipped","data":{"carrier":"ups"}},{"name":"billing.invoice_paid"}]}`,
			[]string{"order.shipped", "billing.invoice_paid"}, ""},
		{`{"tasker_events":{"name":"order.shipped"}}`, nil, "want an array"},
		{`{"tasker_events":[{"name":"Order.Shipped"}]}`, nil, "dotted lower-case"},
		{`{"tasker_events":[{"name":"shipped"}]}`, nil, "dotted lower-case"},
		{`{"tasker_events":[{"name":"task.completed"}]}`, nil, "lifecycle events"},
		{`{"tasker_events":[{"name":"order.shipped","data":[1]}]}`, nil, "data must be a JSON object"},
		{`{"tasker_events":[{"name":"a.` + strings.Repeat("b", 120) + `"}]}`, nil, "over 100"},
		{`{"tasker_events":[` + strings.Repeat(`{"name":"a.b"},`, 20) + `{"name":"a.b"}]}`, nil, "over the limit of 20"},
	} {
		evs, err := contract.CustomEvents(json.RawMessage(c.result))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%.60s: error %v, want %q", c.result, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%.60s: %v", c.result, err)
			continue
		}
		var names []string
		for _, e := range evs {
			names = append(names, e.Name)
		}
		if strings.Join(names, ",") != strings.Join(c.names, ",") {
			t.Errorf("%.60s: names %v, want %v", c.result, names, c.names)
		}
	}
}
