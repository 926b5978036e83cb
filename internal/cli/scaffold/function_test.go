package scaffold

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/template"
)

// tasker new --function: each step's handler is a Lambda function of its
// own. The generated module builds and its tests pass; template.yaml, as
// the SAM translator expands it and cfn-lint checks it, holds the function
// with the scheduler queue as both destinations and the scheduler's
// permission to invoke it; functions/build.mk builds it.
func TestNewScaffoldFunction(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := scaffoldModuleDir(t, "github.com/taskerhq/tasker/scaffoldtest")
	for _, f := range []string{"template.yaml", "functions/build.mk", "infra/database.yaml"} {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runNew(t, "new", "billing/invoice", "--steps", "charge,send_receipt", "--function", "--dir", dir)
	r.want(t, 0, []string{
		filepath.Join(dir, "functions", "handler_billing_charge", "main.go"),
		"Updated " + filepath.Join(dir, "template.yaml"), "Updated " + filepath.Join(dir, "functions", "build.mk"),
		"HandlerBillingSendReceiptFunction (tasker-billing-send-receipt)",
	}, nil)

	tpl, err := template.LoadFile(filepath.Join(dir, "templates", "billing_invoice.yaml"), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"lambda:tasker-billing-charge", "lambda:tasker-billing-send-receipt"} {
		if tpl.Steps[i].Handler != want {
			t.Errorf("step %s handler %s, want %s", tpl.Steps[i].Name, tpl.Steps[i].Handler, want)
		}
	}

	// The generated registry hosts the lambda: names (tasker dev runs them
	// in process); the step tests run them through it; the functions build.
	regTest := `package handlers_test

import (
	"testing"

	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/scaffoldtest/handlers"
	"github.com/taskerhq/tasker/sdk"
)

func TestTemplateHandlersRegistered(t *testing.T) {
	reg := sdk.NewRegistry()
	if err := handlers.Register(reg); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"lambda:tasker-billing-charge", "lambda:tasker-billing-send-receipt"} {
		if !reg.Has(h) {
			t.Errorf("%s is not registered", h)
		}
	}
	if _, err := template.LoadFile("../templates/billing_invoice.yaml", template.Options{Handlers: reg}); err != nil {
		t.Fatal(err)
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "handlers", "registry_test.go"), []byte(regTest), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(t, dir, "vet", "./...")
	goCmd(t, dir, "test", "./handlers/...")

	// sam build runs make build-<LogicalId>.
	mk := exec.Command("make", "-n", "-f", "functions/build.mk", "build-HandlerBillingChargeFunction", "ARTIFACTS_DIR=/tmp/out")
	mk.Dir = dir
	if out, err := mk.CombinedOutput(); err != nil || !strings.Contains(string(out), "./functions/handler_billing_charge") {
		t.Errorf("make -n build-HandlerBillingChargeFunction: %v\n%s", err, out)
	}

	translate := exec.Command("python3", filepath.Join(repo, "scripts", "sam-translate", "sam-translate.py"), filepath.Join(dir, "template.yaml"))
	var stderr bytes.Buffer
	translate.Stderr = &stderr
	out, err := translate.Output()
	if err != nil {
		t.Fatalf("sam-translate: %v\n%s", err, stderr.String())
	}
	var cfn struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(out, &cfn); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []struct{ id, name string }{
		{"HandlerBillingChargeFunction", "tasker-billing-charge"},
		{"HandlerBillingSendReceiptFunction", "tasker-billing-send-receipt"},
	} {
		res := cfn.Resources[fn.id]
		if res.Type != "AWS::Lambda::Function" || res.Properties["FunctionName"] != fn.name {
			t.Errorf("%s: %+v", fn.id, res)
		}
		var eic string
		for _, r := range cfn.Resources {
			if r.Type == "AWS::Lambda::EventInvokeConfig" && strings.Contains(jsonOf(r.Properties["FunctionName"]), fn.id) {
				eic = jsonOf(r.Properties)
			}
		}
		if !strings.Contains(eic, `"MaximumRetryAttempts":0`) || strings.Count(eic, `"SchedulerQueue","Arn"`) != 2 {
			t.Errorf("%s event invoke config: %s", fn.id, eic)
		}
		pol := cfn.Resources[fn.id+"InvokePolicy"]
		if pol.Type != "AWS::IAM::Policy" || !strings.Contains(jsonOf(pol.Properties["Roles"]), `"Ref":"SchedulerFunctionRole"`) ||
			!strings.Contains(jsonOf(pol.Properties["PolicyDocument"]), fn.id) {
			t.Errorf("%sInvokePolicy: %+v", fn.id, pol)
		}
	}
	if cfn.Resources["SchedulerFunctionRole"].Type != "AWS::IAM::Role" {
		t.Error("the translation has no SchedulerFunctionRole for the invoke policies")
	}

	if _, err := exec.LookPath("cfn-lint"); err != nil {
		t.Fatal("cfn-lint is not installed: pip install cfn-lint")
	}
	lint := exec.Command("cfn-lint", "template.yaml")
	lint.Dir = dir
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}

	// Running it again is refused: the functions exist.
	runNew(t, "new", "billing/other", "--steps", "charge", "--function", "--dir", dir).want(t, 1, nil, []string{"HandlerBillingChargeFunction"})
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
