package functions_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/testenv"
)

// functionOf maps a functions/ directory to its lambdaapp wiring.
var functionOf = map[string]lambdaapp.Function{
	"api": lambdaapp.API, "scheduler": lambdaapp.Scheduler, "trigger": lambdaapp.Trigger,
	"migrate": lambdaapp.Migrate, "handlers": lambdaapp.Handlers(nil),
}

// leftToDefault lists the variables the functions read that template.yaml
// leaves unset on purpose, with why. Per function: a variable also set on
// another function (TASKER_RETENTION_DAYS on the scheduler) is listed when
// some function reading it does not need it.
var leftToDefault = map[string]string{
	"TASKER_TEMPLATES_DIR":            "the templates are built into the binary",
	"TASKER_ENV":                      "no per-environment template overrides on AWS",
	"TASKER_HANDLERS_FUNCTION":        "only the scheduler invokes handlers",
	"TASKER_INVOKE_MAX_PAYLOAD_BYTES": "Lambda's asynchronous payload limit is the default",
	"TASKER_EVENT_BUS":                "set only with EnableLifecycleEvents",
	"TASKER_RETENTION_DAYS":           "only the scheduler's sweep prunes",
	"TASKER_RETENTION_BATCH":          "only the scheduler's sweep prunes",
	"TASKER_RETENTION_EXPORT":         "only the scheduler's sweep exports, and only with RetentionExportBucket",
	"TASKER_WEBHOOK_DENY_PRIVATE":     "only the scheduler's sweep delivers webhooks",
	"TASKER_DB_PORT":                  "from the secret or URL",
	"TASKER_DB_USER":                  "from the secret or URL",
	"TASKER_DB_NAME":                  "from the secret or URL",
	"TASKER_DB_SSLMODE":               "the default requires TLS",
	"TASKER_DB_QUERY_EXEC_MODE":       "follows TASKER_DB_PROXY",
	"TASKER_DB_MAX_CONNS":             "the per-function default",
	"TASKER_DB_MAX_CONN_IDLE_TIME":    "the default",
	"TASKER_DB_HOST":                  "from the secret or URL unless DatabaseHost or CreateDatabase",
	"TASKER_HTTP_ALLOWED_HOSTS":       "set only with HttpAllowedHosts",
	"TASKER_AUTH_ISSUER":              "set only with AuthIssuer",
	"TASKER_AUTH_AUDIENCE":            "set only with AuthAudience",
}

// buildTargets parses functions/build.mk: target name -> functions/ dir.
func buildTargets(t *testing.T) map[string]string {
	t.Helper()
	root, _ := testenv.RepoRoot()
	f, err := os.Open(filepath.Join(root, "functions", "build.mk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	targetRE := regexp.MustCompile(`^(build-[A-Za-z0-9]+):\s*$`)
	callRE := regexp.MustCompile(`^\t\$\(call lambda-build,([a-z]+)\)\s*$`)
	out := map[string]string{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := targetRE.FindStringSubmatch(sc.Text()); m != nil {
			cur = m[1]
			continue
		}
		if m := callRE.FindStringSubmatch(sc.Text()); m != nil && cur != "" {
			out[cur] = m[1]
			cur = ""
		}
	}
	return out
}

// serverlessFunctions returns the template's functions by logical id with
// their effective properties (Globals.Function merged under their own).
func serverlessFunctions(tpl cfnTemplate) map[string]map[string]any {
	globals, _ := path(map[string]any(tpl), "Globals", "Function").(map[string]any)
	out := map[string]map[string]any{}
	for name, r := range tpl.section("Resources") {
		res := r.(map[string]any)
		if res["Type"] != "AWS::Serverless::Function" {
			continue
		}
		eff := map[string]any{}
		for k, v := range globals {
			eff[k] = v
		}
		for k, v := range props(res) {
			eff[k] = v
		}
		env := map[string]any{}
		for _, src := range []any{path(globals, "Environment", "Variables"), path(props(res), "Environment", "Variables")} {
			if m, ok := src.(map[string]any); ok {
				for k, v := range m {
					env[k] = v
				}
			}
		}
		eff["__env"] = env
		eff["__metadata"] = res["Metadata"]
		out[name] = eff
	}
	return out
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t, "template.yaml")
	db := loadTemplate(t, "infra/database.yaml")
	if tpl["Transform"] != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform %v", tpl["Transform"])
	}
	fns := serverlessFunctions(tpl)
	targets := buildTargets(t)

	// Every function builds with the Makefile builder from functions/<dir>.
	dirOf := map[string]string{}
	t.Run("code", func(t *testing.T) {
		covered := map[string]bool{}
		for id, p := range fns {
			if exampleFunctions[id] {
				checkExampleFunction(t, id, p)
				continue
			}
			if path(p["__metadata"], "BuildMethod") != "makefile" {
				t.Errorf("%s: Metadata.BuildMethod is not makefile", id)
			}
			dir, ok := targets["build-"+id]
			if !ok {
				t.Errorf("%s: functions/build.mk has no target build-%s", id, id)
				continue
			}
			dirOf[id] = dir
			covered[dir] = true
			if _, ok := functionOf[dir]; !ok {
				t.Errorf("%s builds functions/%s, which is not a known function", id, dir)
			}
			root, _ := testenv.RepoRoot()
			if _, err := os.Stat(filepath.Join(root, "functions", dir, "main.go")); err != nil {
				t.Errorf("%s: %v", id, err)
			}
			if p["CodeUri"] != "." || p["Handler"] != "bootstrap" || p["Runtime"] != "provided.al2023" {
				t.Errorf("%s: CodeUri %v Handler %v Runtime %v; want ., bootstrap, provided.al2023", id, p["CodeUri"], p["Handler"], p["Runtime"])
			}
			if a, _ := p["Architectures"].([]any); len(a) != 1 || a[0] != "arm64" {
				t.Errorf("%s: Architectures %v, want [arm64]", id, p["Architectures"])
			}
		}
		for _, dir := range functionDirs {
			if !covered[dir] {
				t.Errorf("functions/%s is in no template function", dir)
			}
		}
		if len(fns)-len(exampleFunctions) != len(functionDirs) || len(targets) != len(functionDirs) {
			t.Errorf("%d template functions, %d build targets, %d function directories", len(fns), len(targets), len(functionDirs))
		}
	})

	t.Run("environment", func(t *testing.T) {
		for id, p := range fns {
			f, ok := functionOf[dirOf[id]]
			if !ok {
				continue
			}
			env := p["__env"].(map[string]any)
			declared := map[string]lambdaapp.EnvVar{}
			groups := map[string]bool{}
			for _, v := range f.Env {
				declared[v.Name] = v
				if v.Group != "" {
					groups[v.Group] = groups[v.Group] || env[v.Name] != nil
				}
				if v.Required && env[v.Name] == nil {
					t.Errorf("%s: the %s function requires %s, which the template does not set", id, f.Name, v.Name)
				}
			}
			for g, ok := range groups {
				if !ok {
					t.Errorf("%s: the template sets no variable of the %s group", id, g)
				}
			}
			for k := range env {
				if v, ok := declared[k]; !ok || v.Runtime {
					t.Errorf("%s: the template sets %s, which the %s function does not read", id, k, f.Name)
				}
			}
			// Every variable the function reads is set by the template or
			// deliberately left to its default (leftToDefault says why), so
			// a setting added to internal/lambdaapp is not forgotten here.
			for _, v := range f.Env {
				if env[v.Name] == nil && v.Group == "" && !v.Runtime && leftToDefault[v.Name] == "" {
					t.Errorf("%s: the %s function reads %s, which the template neither sets nor lists in leftToDefault", id, f.Name, v.Name)
				}
			}
			if q, ok := env["TASKER_SCHEDULER_QUEUE_URL"]; ok && !isRef(q, "SchedulerQueue") {
				t.Errorf("%s: TASKER_SCHEDULER_QUEUE_URL is %v, want !Ref SchedulerQueue", id, q)
			}
			if h, ok := env["TASKER_HANDLERS_FUNCTION"]; ok && !isRef(h, "HandlersFunction") {
				t.Errorf("%s: TASKER_HANDLERS_FUNCTION is %v, want !Ref HandlersFunction", id, h)
			}
		}
	})

	t.Run("left to default", func(t *testing.T) {
		read := map[string]bool{}
		for _, f := range functionOf {
			for _, v := range f.Env {
				read[v.Name] = true
			}
		}
		for name := range leftToDefault {
			if !read[name] {
				t.Errorf("leftToDefault lists %s, which no function reads", name)
			}
		}
	})

	t.Run("references", func(t *testing.T) {
		nestedLoc := path(tpl.resource(t, "Database"), "Properties", "Location")
		if nestedLoc != "infra/database.yaml" {
			t.Errorf("Database.Location %v", nestedLoc)
		}
		rc := &refChecker{t: t, name: "template.yaml", tpl: tpl, nested: map[string]cfnTemplate{"Database": db},
			customGA: map[string][]string{"Custom::TaskerMigration": {"SchemaVersion", "Applied"}}}
		rc.check()
		dc := &refChecker{t: t, name: "infra/database.yaml", tpl: db}
		dc.check()
		if rc.refs < 50 || dc.refs < 20 {
			t.Errorf("only %d and %d references checked", rc.refs, dc.refs)
		}
		// The parameters the parent passes exist in the nested template.
		for k := range path(tpl.resource(t, "Database"), "Properties", "Parameters").(map[string]any) {
			if _, ok := db.section("Parameters")[k]; !ok {
				t.Errorf("Database passes %s, which infra/database.yaml does not declare", k)
			}
		}
	})

	t.Run("scheduler", func(t *testing.T) {
		s := fns["SchedulerFunction"]
		if s == nil {
			t.Fatal("no SchedulerFunction")
		}
		if s["RecursiveLoop"] != "Allow" || fns["HandlersFunction"]["RecursiveLoop"] != "Allow" {
			t.Error("scheduler and handlers must set RecursiveLoop: Allow")
		}
		var sweep bool
		for name, e := range path(s, "Events").(map[string]any) {
			ev := e.(map[string]any)
			p := ev["Properties"].(map[string]any)
			switch ev["Type"] {
			case "Schedule":
				sweep = p["Schedule"] == "rate(1 minute)"
			default:
				t.Errorf("scheduler event %s of type %v; the queue is read by SchedulerQueueMapping", name, ev["Type"])
			}
		}
		if !sweep {
			t.Error("scheduler has no rate(1 minute) schedule")
		}
		// The queue's event source mapping is written out (not a SAM SQS
		// event) so that its permissions are scoped to the queue.
		m := props(tpl.resource(t, "SchedulerQueueMapping"))
		if !isGetAtt(m["EventSourceArn"], "SchedulerQueue", "Arn") || !isRef(m["FunctionName"], "SchedulerFunction") {
			t.Errorf("SchedulerQueueMapping reads %v into %v, want the scheduler queue into the scheduler", m["EventSourceArn"], m["FunctionName"])
		}
		if rt, _ := m["FunctionResponseTypes"].([]any); len(rt) != 1 || rt[0] != "ReportBatchItemFailures" {
			t.Errorf("SchedulerQueueMapping: FunctionResponseTypes %v, want [ReportBatchItemFailures]", m["FunctionResponseTypes"])
		}
		if !isRef(path(m, "ScalingConfig", "MaximumConcurrency"), "SchedulerMaxConcurrency") {
			t.Errorf("SchedulerQueueMapping: ScalingConfig.MaximumConcurrency %v", path(m, "ScalingConfig", "MaximumConcurrency"))
		}
		if n, _ := m["BatchSize"].(int); n < 1 || n > 10 {
			t.Errorf("SchedulerQueueMapping: BatchSize %v (1-10 without a batching window)", m["BatchSize"])
		}
		timeout, _ := s["Timeout"].(int)
		vis, _ := path(tpl.resource(t, "SchedulerQueue"), "Properties", "VisibilityTimeout").(int)
		if timeout <= 0 || vis < 6*timeout {
			t.Errorf("scheduler queue visibility timeout %d < 6 x scheduler timeout %d", vis, timeout)
		}
		q := props(tpl.resource(t, "SchedulerQueue"))
		if !isGetAtt(path(q, "RedrivePolicy", "deadLetterTargetArn"), "SchedulerDeadLetterQueue", "Arn") {
			t.Errorf("scheduler queue redrive %v", q["RedrivePolicy"])
		}
		if n, _ := path(q, "RedrivePolicy", "maxReceiveCount").(int); n < 2 {
			t.Errorf("maxReceiveCount %d", n)
		}
		if _, fifo := q["FifoQueue"]; fifo {
			t.Error("the scheduler queue must be a standard queue (FIFO queues have no per-message delay)")
		}
	})

	t.Run("handlers", func(t *testing.T) {
		h := fns["HandlersFunction"]
		cfg, _ := h["EventInvokeConfig"].(map[string]any)
		if n, ok := cfg["MaximumRetryAttempts"].(int); !ok || n != 0 {
			t.Errorf("handlers MaximumRetryAttempts %v, want 0 (Tasker owns retries)", cfg["MaximumRetryAttempts"])
		}
		for _, d := range []string{"OnSuccess", "OnFailure"} {
			dest := path(cfg, "DestinationConfig", d)
			if path(dest, "Type") != "SQS" || !isGetAtt(path(dest, "Destination"), "SchedulerQueue", "Arn") {
				t.Errorf("handlers %s destination %v, want the scheduler queue", d, dest)
			}
		}
		if to, _ := h["Timeout"].(int); to < 900 {
			t.Errorf("handlers timeout %d < 900, the longest step timeout", to)
		}
	})

	t.Run("policies", func(t *testing.T) {
		want := map[string][]string{
			"SchedulerFunction": {"SQSSendMessagePolicy:SchedulerQueue", "LambdaInvokePolicy:HandlersFunction", "ExtraHandlerArns"},
			"HandlersFunction":  {"SQSSendMessagePolicy:SchedulerQueue"},
			"ApiFunction":       {"SQSSendMessagePolicy:SchedulerQueue"},
			"TriggerFunction":   {"SQSSendMessagePolicy:SchedulerQueue", "SQSSendMessagePolicy:TriggerFailedEventsQueue"},
		}
		for id, p := range fns {
			got := map[string]bool{}
			var visit func(v any)
			visit = func(v any) {
				switch x := v.(type) {
				case string:
					t.Errorf("%s: managed policy %s; use scoped policy templates", id, x)
				case []any:
					for _, e := range x {
						visit(e)
					}
				case map[string]any:
					if l, ok := x["Fn::If"].([]any); ok {
						visit(l[1])
						visit(l[2])
						return
					}
					if isRef(x, "AWS::NoValue") {
						return
					}
					if sts, ok := x["Statement"].([]any); ok {
						for _, st := range sts {
							r := path(st, "Resource")
							if r == "*" {
								t.Errorf("%s: a statement on Resource *", id)
							}
							if isRef(r, "ExtraHandlerArns") && path(st, "Action") == "lambda:InvokeFunction" {
								got["ExtraHandlerArns"] = true
							}
						}
						return
					}
					for k, v := range x {
						switch k {
						case "SQSSendMessagePolicy":
							if m, ok := path(v, "QueueName").(map[string]any); ok {
								if l, ok := m["Fn::GetAtt"].([]any); ok && l[1] == "QueueName" {
									got[k+":"+l[0].(string)] = true
									continue
								}
							}
							t.Errorf("%s: %s %v is not scoped to a queue of this stack", id, k, v)
						case "LambdaInvokePolicy":
							if n, ok := path(v, "FunctionName", "Ref").(string); ok {
								got[k+":"+n] = true
							} else {
								t.Errorf("%s: %s %v", id, k, v)
							}
						case "AWSSecretsManagerGetSecretValuePolicy", "EventBridgePutEventsPolicy":
						default:
							t.Errorf("%s: unexpected policy %s", id, k)
						}
					}
				}
			}
			visit(p["Policies"])
			for _, w := range want[id] {
				if !got[w] {
					t.Errorf("%s lacks %s (has %v)", id, w, got)
				}
			}
		}
	})

	t.Run("migration", func(t *testing.T) {
		m := tpl.resource(t, "DatabaseSchema")
		p := props(m)
		// The function itself, not a version frozen with old settings.
		if m["Type"] != "Custom::TaskerMigration" || !isGetAtt(p["ServiceToken"], "MigrateFunction", "Arn") {
			t.Errorf("schema resource %v, want ServiceToken !GetAtt MigrateFunction.Arn", m)
		}
		if _, old := tpl.section("Resources")["DatabaseMigration"]; old {
			t.Error("DatabaseMigration is back; its ServiceToken cannot change in place, which is why DatabaseSchema replaced it")
		}
		// Properties that change with the code, the deploy id and the
		// database the functions use.
		if !isRef(p["CodeVersion"], "MigrateFunction.Version") || !isRef(p["DeployId"], "DeployId") {
			t.Errorf("schema properties %v", p)
		}
		db, _ := p["Database"].(map[string]any)
		for _, k := range []string{"CreateDatabase", "Url", "SecretArn", "Host", "Proxy", "SubnetIds", "SecurityGroupIds"} {
			if db[k] == nil {
				t.Errorf("DatabaseSchema.Database lacks %s: changing it would not migrate the new database", k)
			}
		}
		for _, id := range []string{"ApiFunction", "SchedulerFunction", "TriggerFunction"} {
			if tpl.resource(t, id)["DependsOn"] != "DatabaseSchema" {
				t.Errorf("%s does not wait for the migration", id)
			}
		}
		to, _ := fns["MigrateFunction"]["Timeout"].(int)
		st, _ := p["ServiceTimeout"].(int)
		// Connection retries (about 5 minutes) and the migrations fit the
		// function's timeout; CloudFormation stops waiting soon after it.
		if to < 360 || st < to || st > to+120 {
			t.Errorf("migrate timeout %d, ServiceTimeout %d; want a timeout of at least 360 s and a ServiceTimeout just above it", to, st)
		}
	})

	t.Run("vpc-and-api", func(t *testing.T) {
		for _, id := range []string{"ApiFunction", "SchedulerFunction", "TriggerFunction", "MigrateFunction"} {
			l, ok := path(fns[id], "VpcConfig", "Fn::If").([]any)
			if !ok || l[0] != "InVpc" || !isRef(l[2], "AWS::NoValue") {
				t.Errorf("%s: VpcConfig %v, want !If [InVpc, …, !Ref AWS::NoValue]", id, fns[id]["VpcConfig"])
			}
		}
		integ := props(tpl.resource(t, "HttpApiIntegration"))
		if integ["PayloadFormatVersion"] != "2.0" || !isGetAtt(integ["IntegrationUri"], "ApiFunction", "Arn") {
			t.Errorf("integration %v", integ)
		}
		route := props(tpl.resource(t, "HttpApiDefaultRoute"))
		if route["RouteKey"] != "$default" || path(route, "AuthorizationType", "Fn::If") == nil {
			t.Errorf("default route %v", route)
		}
		// Callback routes carry no JWT: the token in the path authorises them.
		if cb := props(tpl.resource(t, "HttpApiCallbackRoute")); cb["RouteKey"] != "POST /v1/callbacks/{token}/{action}" || cb["AuthorizationType"] != "NONE" {
			t.Errorf("callback route %v", cb)
		}
		if tpl.resource(t, "HttpApiAuthorizer")["Condition"] != "HasIssuer" {
			t.Error("the JWT authorizer is not conditional on an issuer")
		}
		outs := tpl.section("Outputs")
		if !isGetAtt(path(outs, "ApiUrl", "Value"), "HttpApi", "ApiEndpoint") || !isRef(path(outs, "SchedulerQueueUrl", "Value"), "SchedulerQueue") {
			t.Errorf("outputs %v", outs)
		}
	})

	t.Run("docs", func(t *testing.T) {
		root, _ := testenv.RepoRoot()
		b, err := os.ReadFile(filepath.Join(root, "docs", "deploy.md"))
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for _, want := range []string{"sam build", "sam deploy --guided", "include functions/build.mk", "MaximumRetryAttempts: 0", "OnSuccess", "OnFailure"} {
			if !strings.Contains(doc, want) {
				t.Errorf("docs/deploy.md does not mention %q", want)
			}
		}
		var params []string
		for name := range tpl.section("Parameters") {
			params = append(params, name)
		}
		sort.Strings(params)
		for _, p := range params {
			if !strings.Contains(doc, "`"+p+"`") {
				t.Errorf("docs/deploy.md does not describe the parameter `%s`", p)
			}
		}
		sc, err := os.ReadFile(filepath.Join(root, "samconfig.toml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "[default.deploy.parameters]", `stack_name = "tasker"`} {
			if !strings.Contains(string(sc), want) {
				t.Errorf("samconfig.toml lacks %s", want)
			}
		}
	})
}

// TestBuildTargets runs every build-<LogicalId> target of functions/build.mk
// as `sam build` does (ARTIFACTS_DIR set, from the repository root) and
// checks that each writes a static Linux arm64 bootstrap.
func TestBuildTargets(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	targets := buildTargets(t)
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, target := range names {
		out := filepath.Join(t.TempDir(), target)
		cmd := exec.Command("make", "--no-print-directory", "-f", "functions/build.mk", target, "ARTIFACTS_DIR="+out)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, b)
		}
		f, err := elf.Open(filepath.Join(out, "bootstrap"))
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
			t.Errorf("%s: bootstrap is %v %v, want an AArch64 executable", target, f.Machine, f.Type)
		}
		if interp := f.Section(".interp"); interp != nil {
			t.Errorf("%s: bootstrap is dynamically linked", target)
		}
		f.Close()
	}
	cmd := exec.Command("make", "--no-print-directory", "-f", "functions/build.mk", "build-ApiFunction")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ARTIFACTS_DIR=")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "ARTIFACTS_DIR is not set") {
		t.Errorf("make without ARTIFACTS_DIR: %v\n%s", err, b)
	}
}

// exampleFunctions are the example step handlers in other runtimes
// (examples/handlers, docs/handlers.md), deployed with DeployExamples=true.
var exampleFunctions = map[string]bool{"PricingExampleFunction": true, "ConfirmExampleFunction": true, "NotifyExampleFunction": true}

// checkExampleFunction checks an example handler function: built by SAM
// from its source directory, with Tasker's async settings.
func checkExampleFunction(t *testing.T, id string, p map[string]any) {
	t.Helper()
	rt, _ := p["Runtime"].(string)
	uri, _ := p["CodeUri"].(string)
	if !(strings.HasPrefix(rt, "python3.") || strings.HasPrefix(rt, "nodejs")) || !strings.HasPrefix(uri, "examples/handlers/") {
		t.Errorf("%s: Runtime %v CodeUri %v; want a Python or Node.js runtime and a directory of examples/handlers", id, rt, uri)
	}
	root, _ := testenv.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(uri))); err != nil {
		t.Errorf("%s: %v", id, err)
	}
	name, _ := p["FunctionName"].(string)
	if !strings.HasPrefix(name, "tasker-example-") {
		t.Errorf("%s: FunctionName %q, want the tasker-example-… name its template calls", id, name)
	}
	if path(p, "EventInvokeConfig", "MaximumRetryAttempts") != 0 ||
		!isGetAtt(path(p, "EventInvokeConfig", "DestinationConfig", "OnSuccess", "Destination"), "SchedulerQueue", "Arn") ||
		!isGetAtt(path(p, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination"), "SchedulerQueue", "Arn") {
		t.Errorf("%s: EventInvokeConfig %v; want MaximumRetryAttempts 0 and both destinations on the scheduler queue", id, p["EventInvokeConfig"])
	}
}
