package functions_test

import (
	"sort"
	"strings"
	"testing"

	tconfig "github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/retention"
)

// resourcesOf returns the logical ids of a template's resources of a type.
func resourcesOf(tpl cfnTemplate, typ string) []string {
	var ids []string
	for id, r := range tpl.section("Resources") {
		if r.(map[string]any)["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func isIfNoValue(v any, cond string, then func(any) bool) bool {
	l, ok := path(v, "Fn::If").([]any)
	return ok && len(l) == 3 && l[0] == cond && then(l[1]) && isRef(l[2], "AWS::NoValue")
}

// TestTransformedTemplate checks template.yaml as CloudFormation receives
// it, after the SAM translator, for what issue 16 requires of the
// deployment.
func TestTransformedTemplate(t *testing.T) {
	t.Parallel()
	tpl := samTranslate(t)
	res := tpl.section("Resources")
	params := tpl.section("Parameters")
	fn := func(id string) map[string]any { return props(tpl.resource(t, id)) }

	t.Run("schema custom resource", func(t *testing.T) {
		p := fn("DatabaseSchema")
		if !isGetAtt(p["ServiceToken"], "MigrateFunction", "Arn") {
			t.Errorf("ServiceToken %v, want the function's ARN (its current configuration)", p["ServiceToken"])
		}
		versions := resourcesOf(tpl, "AWS::Lambda::Version")
		if len(versions) != 1 || !strings.HasPrefix(versions[0], "MigrateFunctionVersion") || !isRef(p["CodeVersion"], versions[0]) {
			t.Errorf("versions %v, CodeVersion %v; want only the migrate function's, named by CodeVersion", versions, p["CodeVersion"])
		}
		if st, _ := p["ServiceTimeout"].(int); st < 60 || st > 900 {
			t.Errorf("ServiceTimeout %v, want minutes, not CloudFormation's hour", p["ServiceTimeout"])
		}
		if v, _ := path(p, "VpcEndpoints", "Fn::If").([]any); len(v) != 3 || v[0] != "VpcEndpoints" {
			t.Errorf("DatabaseSchema does not wait for the VPC endpoints: %v", p["VpcEndpoints"])
		}
	})

	t.Run("vpc endpoints", func(t *testing.T) {
		services := map[string]string{}
		for _, id := range resourcesOf(tpl, "AWS::EC2::VPCEndpoint") {
			r := tpl.resource(t, id)
			if r["Condition"] != "VpcEndpoints" {
				t.Errorf("%s is not conditional on VpcEndpoints", id)
			}
			sub, _ := path(props(r), "ServiceName", "Fn::Sub").(string)
			svc := strings.TrimPrefix(sub, "com.amazonaws.${AWS::Region}.")
			services[svc] = props(r)["VpcEndpointType"].(string)
		}
		want := map[string]string{"s3": "Gateway", "secretsmanager": "Interface", "sqs": "Interface", "lambda": "Interface", "events": "Interface"}
		for svc, typ := range want {
			if services[svc] != typ {
				t.Errorf("endpoint for %s: %q, want %s", svc, services[svc], typ)
			}
		}
		if c := path(tpl.section("Conditions"), "VpcEndpoints"); c == nil {
			t.Error("no VpcEndpoints condition")
		}
		if path(params, "CreateVpcEndpoints", "Default") != "false" {
			t.Error("CreateVpcEndpoints is not an opt-in switch")
		}
		rule := tpl.section("Rules")["SubnetsNeedSecurityGroups"]
		if !strings.Contains(jsonText(rule), "SecurityGroupIds") {
			t.Errorf("no rule refusing subnets without security groups: %v", rule)
		}
	})

	t.Run("throttling and event age", func(t *testing.T) {
		h := fn("HandlersFunction")
		cfg := fn("HandlersFunctionEventInvokeConfig")
		timeout, _ := h["Timeout"].(int)
		// The engine's deadline grace (engine.Config.DeadlineGrace default).
		const grace = 30
		if age, _ := cfg["MaximumEventAgeInSeconds"].(int); age != timeout+grace {
			t.Errorf("handlers MaximumEventAgeInSeconds %v, want the longest step timeout %d + %d s grace", cfg["MaximumEventAgeInSeconds"], timeout, grace)
		}
		if !isIfNoValue(h["ReservedConcurrentExecutions"], "HasHandlersReserved", func(v any) bool { return isRef(v, "HandlersReservedConcurrency") }) {
			t.Errorf("handlers ReservedConcurrentExecutions %v", h["ReservedConcurrentExecutions"])
		}
		if !isIfNoValue(fn("TriggerFunction")["ReservedConcurrentExecutions"], "HasTriggerReserved", func(v any) bool { return isRef(v, "TriggerReservedConcurrency") }) {
			t.Errorf("trigger ReservedConcurrentExecutions %v", fn("TriggerFunction")["ReservedConcurrentExecutions"])
		}
		mif, _ := path(params, "MaxInFlight", "Default").(int)
		hrc, _ := path(params, "HandlersReservedConcurrency", "Default").(int)
		if mif == 0 || mif != hrc {
			t.Errorf("MaxInFlight default %d, HandlersReservedConcurrency default %d; want equal and non-zero", mif, hrc)
		}
	})

	t.Run("scheduler queue", func(t *testing.T) {
		m := fn("SchedulerQueueMapping")
		if !isGetAtt(m["EventSourceArn"], "SchedulerQueue", "Arn") {
			t.Errorf("mapping %v", m)
		}
		role := fn("SchedulerFunctionRole")
		for _, arn := range role["ManagedPolicyArns"].([]any) {
			if s, _ := arn.(string); strings.Contains(s, "SQSQueueExecutionRole") {
				t.Errorf("the scheduler role has %s (every queue); want a statement on the scheduler queue", s)
			}
		}
		if !strings.Contains(jsonText(role["Policies"]), "sqs:ChangeMessageVisibility") {
			t.Error("the scheduler cannot change a failed message's visibility")
		}
	})

	t.Run("log groups", func(t *testing.T) {
		fns := resourcesOf(tpl, "AWS::Lambda::Function")
		if len(fns) != 5+len(exampleFunctions) {
			t.Errorf("functions %v", fns)
		}
		for _, id := range fns {
			lg, _ := path(fn(id), "LoggingConfig", "LogGroup", "Ref").(string)
			r, ok := res[lg].(map[string]any)
			if !ok || r["Type"] != "AWS::Logs::LogGroup" || !isRef(props(r)["RetentionInDays"], "LogRetentionDays") {
				t.Errorf("%s logs to %q, want a log group of this stack with RetentionInDays !Ref LogRetentionDays", id, lg)
			}
			// Tracing defaults to Disabled: no tracing configuration and
			// no X-Ray policy (on Resource *) on the role.
			if tc := fn(id)["TracingConfig"]; tc != nil {
				t.Errorf("%s has TracingConfig %v by default", id, tc)
			}
			if p := jsonText(fn(id + "Role")["ManagedPolicyArns"]); strings.Contains(p, "Xray") {
				t.Errorf("%s's role has an X-Ray policy by default: %s", id, p)
			}
		}
		if path(params, "Tracing", "Default") != "Disabled" {
			t.Error("X-Ray tracing is on by default")
		}
	})

	t.Run("tracing on request", func(t *testing.T) {
		traced := samTranslate(t, "Tracing=Active")
		for _, id := range resourcesOf(traced, "AWS::Lambda::Function") {
			if !isRef(path(props(traced.resource(t, id)), "TracingConfig", "Mode"), "Tracing") {
				t.Errorf("%s with Tracing=Active: TracingConfig %v", id, path(props(traced.resource(t, id)), "TracingConfig"))
			}
			if p := jsonText(path(props(traced.resource(t, id+"Role")), "ManagedPolicyArns")); !strings.Contains(p, "AWSXrayWriteOnlyAccess") {
				t.Errorf("%s with Tracing=Active cannot write traces: %s", id, p)
			}
		}
	})

	t.Run("alarms", func(t *testing.T) {
		want := map[string]string{
			"SchedulerDeadLetterAlarm":         "AWS/SQS ApproximateNumberOfMessagesVisible SchedulerDeadLetterQueue",
			"TriggerFailedEventsAlarm":         "AWS/SQS ApproximateNumberOfMessagesVisible TriggerFailedEventsQueue",
			"DestinationDeliveryFailuresAlarm": "AWS/Lambda DestinationDeliveryFailures HandlersFunction",
			"HandlersEventsDroppedAlarm":       "AWS/Lambda AsyncEventsDropped HandlersFunction",
			"HandlersEventAgeAlarm":            "AWS/Lambda AsyncEventAge HandlersFunction",
			"SchedulerErrorsAlarm":             "AWS/Lambda Errors SchedulerFunction",
			"ApiErrorsAlarm":                   "AWS/Lambda Errors ApiFunction",
			"TriggerErrorsAlarm":               "AWS/Lambda Errors TriggerFunction",
			"HandlersErrorsAlarm":              "AWS/Lambda Errors HandlersFunction",
			"MigrateErrorsAlarm":               "AWS/Lambda Errors MigrateFunction",
			"SchedulerThrottlesAlarm":          "AWS/Lambda Throttles SchedulerFunction",
			"ApiThrottlesAlarm":                "AWS/Lambda Throttles ApiFunction",
			"TriggerThrottlesAlarm":            "AWS/Lambda Throttles TriggerFunction",
			"HandlersThrottlesAlarm":           "AWS/Lambda Throttles HandlersFunction",
			"ProxyPinningAlarm":                "AWS/RDS DatabaseConnectionsCurrentlySessionPinned Database",
		}
		got := resourcesOf(tpl, "AWS::CloudWatch::Alarm")
		if len(got) != len(want) {
			t.Errorf("alarms %v", got)
		}
		for id, w := range want {
			r, ok := res[id].(map[string]any)
			if !ok {
				t.Errorf("no alarm %s", id)
				continue
			}
			p := props(r)
			dims, _ := p["Dimensions"].([]any)
			var target string
			if len(dims) == 1 {
				v := path(dims[0], "Value")
				if s, ok := path(v, "Ref").(string); ok {
					target = s
				} else if l, ok := path(v, "Fn::GetAtt").([]any); ok {
					target = l[0].(string)
				}
			}
			if g := p["Namespace"].(string) + " " + p["MetricName"].(string) + " " + target; g != w {
				t.Errorf("%s watches %q, want %q", id, g, w)
			}
			for _, k := range []string{"AlarmActions", "OKActions"} {
				if !isIfNoValue(p[k], "HasAlarmTopic", func(v any) bool { l, _ := v.([]any); return len(l) == 1 && isRef(l[0], "AlarmTopicArn") }) {
					t.Errorf("%s %s %v, want the optional topic", id, k, p[k])
				}
			}
			if d, _ := p["AlarmDescription"].(string); !strings.Contains(d, "docs/operating.md") {
				t.Errorf("%s description does not point to docs/operating.md", id)
			}
		}
		if r, _ := res["ProxyPinningAlarm"].(map[string]any); r["Condition"] != "CreateDatabaseStack" {
			t.Error("ProxyPinningAlarm exists without the proxy")
		}
	})

	t.Run("database stack", func(t *testing.T) {
		r := tpl.resource(t, "Database")
		if r["Type"] != "AWS::CloudFormation::Stack" {
			t.Fatalf("Database is a %v", r["Type"])
		}
		pass, _ := path(props(r), "Parameters").(map[string]any)
		for k, from := range map[string]string{"EngineVersion": "DatabaseEngineVersion", "MinCapacity": "DatabaseMinCapacity",
			"MaxCapacity": "DatabaseMaxCapacity", "DeletionProtection": "DatabaseDeletionProtection"} {
			if !isRef(pass[k], from) {
				t.Errorf("Database.Parameters.%s is %v, want !Ref %s", k, pass[k], from)
			}
		}
		if path(params, "DatabaseDeletionProtection", "Default") != "false" {
			t.Error("deletion protection on by default: a failed first deploy cannot roll back")
		}
		if mn, _ := path(params, "DatabaseMinCapacity", "MinValue").(float64); mn < 0.5 {
			if mi, _ := path(params, "DatabaseMinCapacity", "MinValue").(int); mi < 1 {
				t.Errorf("DatabaseMinCapacity MinValue %v: 0 (pause) would never pause with the one-minute sweep", path(params, "DatabaseMinCapacity", "MinValue"))
			}
		}
		db := loadTemplate(t, "infra/database.yaml")
		if path(db.resource(t, "DatabaseInstance"), "Properties", "PubliclyAccessible") != false {
			t.Error("DatabaseInstance PubliclyAccessible is not false")
		}
		if db.resource(t, "DatabaseCluster")["DeletionPolicy"] != "Snapshot" || path(db.section("Parameters"), "DeletionProtection", "Default") != "false" {
			t.Error("the cluster must snapshot on delete, with deletion protection off by default")
		}
	})

	t.Run("payload bucket", func(t *testing.T) {
		b := fn("PayloadBucket")
		rules, _ := path(b, "LifecycleConfiguration", "Rules").([]any)
		if len(rules) != 1 || path(rules[0], "Status") != "Enabled" || path(rules[0], "Prefix") != "tasks/" ||
			!isRef(path(rules[0], "ExpirationInDays"), "PayloadRetentionDays") {
			t.Errorf("lifecycle rules %v, want one expiring tasks/ after PayloadRetentionDays", rules)
		}
		for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
			if path(b, "PublicAccessBlockConfiguration", k) != true {
				t.Errorf("PublicAccessBlockConfiguration.%s is not true", k)
			}
		}
		if _, ok := params["PayloadRetentionDays"]; !ok {
			t.Error("no PayloadRetentionDays parameter")
		}
		// Least privilege: object actions under tasks/ only, and only the
		// functions that store or read values; handlers use presigned URLs.
		want := map[string][]string{
			"SchedulerFunctionRole": {"s3:GetObject", "s3:PutObject"},
			"ApiFunctionRole":       {"s3:GetObject", "s3:PutObject"},
			"TriggerFunctionRole":   {"s3:PutObject"},
			"HandlersFunctionRole":  nil,
			"MigrateFunctionRole":   nil,
		}
		for role, actions := range want {
			var got []string
			for _, pol := range asList(path(fn(role), "Policies")) {
				for _, st := range asList(path(pol, "PolicyDocument", "Statement")) {
					acts := asList(path(st, "Action"))
					for _, a := range acts {
						as, _ := a.(string)
						if !strings.HasPrefix(as, "s3:") {
							continue
						}
						got = append(got, as)
						r := path(st, "Resource")
						sub, _ := path(r, "Fn::Sub").(string)
						if sub != "${PayloadBucket.Arn}/tasks/*" {
							t.Errorf("%s: %s on %v, want ${PayloadBucket.Arn}/tasks/*", role, as, r)
						}
					}
				}
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(actions, ",") {
				t.Errorf("%s: S3 actions %v, want %v", role, got, actions)
			}
		}
		for _, f := range []string{"SchedulerFunction", "ApiFunction", "TriggerFunction"} {
			if !isRef(path(fn(f), "Environment", "Variables", "TASKER_PAYLOAD_BUCKET"), "PayloadBucket") {
				t.Errorf("%s: TASKER_PAYLOAD_BUCKET is not !Ref PayloadBucket", f)
			}
		}
	})

	t.Run("retention", func(t *testing.T) {
		for name, want := range map[string][3]any{
			"RetentionDays":  {retention.DefaultDays, 0, retention.MaxDays},
			"RetentionBatch": {retention.DefaultBatch, 1, retention.MaxBatch},
		} {
			got := [3]any{path(params, name, "Default"), path(params, name, "MinValue"), path(params, name, "MaxValue")}
			if got != want {
				t.Errorf("%s default, min, max %v, want %v (internal/retention)", name, got, want)
			}
		}
		if path(params, "RetentionExportBucket", "Default") != "" {
			t.Error("RetentionExportBucket must default to empty: no export")
		}
		if _, ok := params["RetentionExportPrefix"]; !ok {
			t.Error("no RetentionExportPrefix parameter")
		}
		for c, ref := range map[string]string{"HasRetentionExport": "RetentionExportBucket", "HasRetentionExportPrefix": "RetentionExportPrefix"} {
			if txt := jsonText(tpl.section("Conditions")[c]); !strings.Contains(txt, `"Ref":"`+ref+`"`) {
				t.Errorf("condition %s is %s, want a test of %s", c, txt, ref)
			}
		}
		// The sweep prunes, so only the scheduler gets the settings.
		env := path(fn("SchedulerFunction"), "Environment", "Variables")
		for k, ref := range map[string]string{"TASKER_RETENTION_DAYS": "RetentionDays", "TASKER_RETENTION_BATCH": "RetentionBatch"} {
			if !isRef(path(env, k), ref) {
				t.Errorf("scheduler %s is %v, want !Ref %s", k, path(env, k), ref)
			}
		}
		if !isIfNoValue(path(env, "TASKER_RETENTION_EXPORT"), "HasRetentionExport", func(v any) bool {
			return path(v, "Fn::Sub") == "s3://${RetentionExportBucket}/${RetentionExportPrefix}"
		}) {
			t.Errorf("scheduler TASKER_RETENTION_EXPORT is %v, want s3://bucket/prefix only with HasRetentionExport", path(env, "TASKER_RETENTION_EXPORT"))
		}
		for _, f := range []string{"ApiFunction", "TriggerFunction", "HandlersFunction", "MigrateFunction"} {
			if txt := jsonText(path(fn(f), "Environment")); strings.Contains(txt, "TASKER_RETENTION_") {
				t.Errorf("%s sets retention variables; only the scheduler's sweep prunes", f)
			}
		}
		// The scheduler's sweep fits a batch at the largest RetentionBatch:
		// a 100-task prune takes 0.1-0.2 s (docs/bench/2026-12-06-issue20-retention.txt).
		if to, _ := fn("SchedulerFunction")["Timeout"].(int); to < 30 {
			t.Errorf("scheduler Timeout %d s, too short for a sweep that prunes a batch", to)
		}
		// Least privilege: one conditional s3:PutObject under the export
		// prefix, on the scheduler's role only.
		var export []any
		for _, pol := range asList(path(fn("SchedulerFunctionRole"), "Policies")) {
			l, ok := path(pol, "Fn::If").([]any)
			if ok && len(l) == 3 && l[0] == "HasRetentionExport" {
				if !isRef(l[2], "AWS::NoValue") {
					t.Errorf("export policy's else branch %v, want AWS::NoValue", l[2])
				}
				export = append(export, l[1])
			}
		}
		if len(export) != 1 {
			t.Fatalf("scheduler role has %d policies on HasRetentionExport, want 1", len(export))
		}
		sts := asList(path(export[0], "PolicyDocument", "Statement"))
		if len(sts) != 1 || path(sts[0], "Effect") != "Allow" || jsonText(path(sts[0], "Action")) != `"s3:PutObject"` {
			t.Fatalf("export statements %s, want one Allow s3:PutObject", jsonText(sts))
		}
		r, _ := path(sts[0], "Resource", "Fn::If").([]any)
		if len(r) != 3 || r[0] != "HasRetentionExportPrefix" ||
			path(r[1], "Fn::Sub") != "arn:${AWS::Partition}:s3:::${RetentionExportBucket}/${RetentionExportPrefix}/*" ||
			path(r[2], "Fn::Sub") != "arn:${AWS::Partition}:s3:::${RetentionExportBucket}/*" {
			t.Errorf("export resource %s, want objects under the prefix (the bucket's objects without one)", jsonText(path(sts[0], "Resource")))
		}
		for _, role := range resourcesOf(tpl, "AWS::IAM::Role") {
			n := strings.Count(jsonText(fn(role)), "RetentionExportBucket")
			if want := map[bool]int{true: 2, false: 0}[role == "SchedulerFunctionRole"]; n != want {
				t.Errorf("%s names RetentionExportBucket %d times, want %d", role, n, want)
			}
		}
	})

	t.Run("adaptive concurrency and webhooks", func(t *testing.T) {
		if path(params, "AdaptiveConcurrency", "Default") != "true" || jsonText(path(params, "AdaptiveConcurrency", "AllowedValues")) != `["true","false"]` {
			t.Errorf("AdaptiveConcurrency %s, want true/false defaulting to true", jsonText(params["AdaptiveConcurrency"]))
		}
		// 0 is read as "a tenth of the cap" (engine.AdaptiveConfig.Min).
		if got := [3]any{path(params, "MinInFlight", "Default"), path(params, "MinInFlight", "MinValue"), path(params, "MinInFlight", "MaxValue")}; got != [3]any{0, 0, tconfig.MaxInFlightLimit} {
			t.Errorf("MinInFlight default, min, max %v, want 0, 0, %d", got, tconfig.MaxInFlightLimit)
		}
		if path(params, "WebhookDenyPrivate", "Default") != "true" {
			t.Error("WebhookDenyPrivate does not default to true")
		}
		// Every function that runs the engine gets the same in-flight
		// settings, so its passes and /v1/health/status agree.
		for _, f := range []string{"SchedulerFunction", "ApiFunction", "TriggerFunction"} {
			env := path(fn(f), "Environment", "Variables")
			for k, ref := range map[string]string{"TASKER_MAX_IN_FLIGHT": "MaxInFlight",
				"TASKER_ADAPTIVE_CONCURRENCY": "AdaptiveConcurrency", "TASKER_MIN_IN_FLIGHT": "MinInFlight"} {
				if !isRef(path(env, k), ref) {
					t.Errorf("%s %s is %v, want !Ref %s", f, k, path(env, k), ref)
				}
			}
		}
		// Deliveries ride on the sweep: the scheduler only.
		if v := path(fn("SchedulerFunction"), "Environment", "Variables", "TASKER_WEBHOOK_DENY_PRIVATE"); !isRef(v, "WebhookDenyPrivate") {
			t.Errorf("scheduler TASKER_WEBHOOK_DENY_PRIVATE is %v, want !Ref WebhookDenyPrivate", v)
		}
	})

	t.Run("permissions", func(t *testing.T) {
		for _, id := range resourcesOf(tpl, "AWS::Lambda::Permission") {
			p := fn(id)
			if p["SourceArn"] == nil {
				t.Errorf("%s lets %v invoke without a SourceArn", id, p["Principal"])
			}
		}
	})
}

// asList returns v as a list: a one-element list for a single value.
func asList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}
