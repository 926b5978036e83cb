package lambdaapp

import (
	"fmt"
	"sort"
	"strings"

	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/dbconfig"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/invoke/lambda"
	"github.com/taskerhq/tasker/internal/retention"
	"github.com/taskerhq/tasker/sdk"
)

// Environment variables read here (the others belong to dbconfig, auth and
// invoke/lambda; docs/architecture.md, "Configuration").
const (
	EnvLogLevel          = config.EnvLogLevel
	EnvTemplatesDir      = "TASKER_TEMPLATES_DIR"
	EnvTemplatesEnv      = "TASKER_ENV"
	EnvSchedulerQueueURL = "TASKER_SCHEDULER_QUEUE_URL"
	EnvMaxInFlight       = "TASKER_MAX_IN_FLIGHT"
	EnvEventBus          = "TASKER_EVENT_BUS"
	// EnvPayloadBucket names the S3 bucket of large payloads (template.yaml,
	// PayloadBucket); unset keeps every value inline.
	EnvPayloadBucket = "TASKER_PAYLOAD_BUCKET"
	// Adaptive concurrency and webhook deliveries (docs/operating.md).
	EnvAdaptiveConcurrency = "TASKER_ADAPTIVE_CONCURRENCY"
	EnvMinInFlight         = "TASKER_MIN_IN_FLIGHT"
	EnvWebhookDenyPrivate  = "TASKER_WEBHOOK_DENY_PRIVATE"
	// EnvAuthSecretARN names a Secrets Manager secret whose SecretString
	// is the HS256 secret, read at cold start when TASKER_AUTH_HS256_SECRET
	// is not set, so the secret stays out of the function's configuration.
	EnvAuthSecretARN = "TASKER_AUTH_HS256_SECRET_ARN"
	// EnvAuthDisabled=true lets the API Lambda run without authentication;
	// without it, an API Lambda with no key source refuses to start.
	EnvAuthDisabled = "TASKER_AUTH_DISABLED"
	envFunctionName = "AWS_LAMBDA_FUNCTION_NAME"
)

// EnvVar is one environment variable a function reads.
type EnvVar struct {
	Name string
	// Required variables must be set: the function refuses to start
	// without them.
	Required bool
	// Group names a set of alternatives of which at least one must be set
	// ("database": DATABASE_URL, TASKER_DB_SECRET_ARN or TASKER_DB_IAM).
	Group string
	// Runtime marks variables the Lambda runtime sets itself.
	Runtime bool
}

// Groups of alternatives.
const (
	GroupDatabase = "database"
	GroupAuth     = "auth"
)

var (
	logEnv = []EnvVar{{Name: EnvLogLevel}}
	dbEnv  = []EnvVar{
		{Name: dbconfig.EnvDatabaseURL, Group: GroupDatabase},
		{Name: dbconfig.EnvSecretARN, Group: GroupDatabase},
		{Name: dbconfig.EnvIAM, Group: GroupDatabase},
		{Name: dbconfig.EnvHost}, {Name: dbconfig.EnvPort}, {Name: dbconfig.EnvUser}, {Name: dbconfig.EnvName},
		{Name: dbconfig.EnvSSLMode}, {Name: dbconfig.EnvProxy}, {Name: dbconfig.EnvQueryExecMode},
		{Name: dbconfig.EnvMaxConns}, {Name: dbconfig.EnvMaxConnIdleTime},
		{Name: envFunctionName, Runtime: true},
	}
	templatesEnv = []EnvVar{{Name: EnvTemplatesDir}, {Name: EnvTemplatesEnv}}
	engineEnv    = join(templatesEnv, []EnvVar{
		{Name: EnvSchedulerQueueURL, Required: true},
		{Name: lambda.EnvHandlersFunction}, {Name: lambda.EnvMaxPayloadBytes},
		{Name: EnvMaxInFlight}, {Name: EnvEventBus},
		{Name: retention.EnvDays}, {Name: retention.EnvBatch}, {Name: retention.EnvExport},
		{Name: EnvPayloadBucket}, {Name: engine.EnvPayloadInlineBytes}, {Name: engine.EnvPayloadMaxBytes},
		{Name: EnvAdaptiveConcurrency}, {Name: EnvMinInFlight}, {Name: EnvWebhookDenyPrivate},
	})
	httpEnv = []EnvVar{{Name: sdk.EnvHTTPAllowedHosts}, {Name: sdk.EnvHTTPDenyPrivate}}
	authEnv = []EnvVar{
		{Name: auth.EnvHS256Secret, Group: GroupAuth}, {Name: EnvAuthSecretARN, Group: GroupAuth},
		{Name: auth.EnvJWKSURL, Group: GroupAuth}, {Name: EnvAuthDisabled, Group: GroupAuth},
		{Name: auth.EnvIssuer}, {Name: auth.EnvAudience}, {Name: auth.EnvMaxLifetime},
	}
)

func join(lists ...[]EnvVar) []EnvVar {
	var out []EnvVar
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// require returns vars with the named ones made Required.
func require(vars []EnvVar, names ...string) []EnvVar {
	out := append([]EnvVar(nil), vars...)
	for i := range out {
		for _, n := range names {
			if out[i].Name == n {
				out[i].Required = true
			}
		}
	}
	return out
}

// checkEnv reports required variables and groups that are not set.
func checkEnv(fn string, vars []EnvVar, getenv func(string) string) error {
	var missing []string
	groups := map[string][]string{}
	satisfied := map[string]bool{}
	for _, v := range vars {
		set := strings.TrimSpace(getenv(v.Name)) != ""
		if v.Required && !set {
			missing = append(missing, v.Name)
		}
		if v.Group != "" {
			groups[v.Group] = append(groups[v.Group], v.Name)
			satisfied[v.Group] = satisfied[v.Group] || set
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		if !satisfied[g] {
			missing = append(missing, "one of "+strings.Join(groups[g], ", "))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s function: environment not configured: set %s", fn, strings.Join(missing, "; "))
	}
	return nil
}
