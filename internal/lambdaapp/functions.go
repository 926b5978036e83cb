package lambdaapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/api"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	lambdainvoke "github.com/taskerhq/tasker/internal/invoke/lambda"
	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/trigger"
	"github.com/taskerhq/tasker/internal/webui"
	"github.com/taskerhq/tasker/sdk"
)

// The functions of the deployment (see the package doc).
var (
	API = Function{Name: "api", Env: join(logEnv, dbEnv, engineEnv, authEnv), setup: setupAPI}

	Scheduler = Function{
		Name:  "scheduler",
		Env:   require(join(logEnv, dbEnv, engineEnv), lambdainvoke.EnvHandlersFunction),
		setup: setupScheduler,
	}

	Trigger = Function{Name: "trigger", Env: join(logEnv, dbEnv, engineEnv), setup: setupTrigger}

	Migrate = Function{Name: "migrate", Env: join(logEnv, dbEnv), setup: setupMigrate, reportsConfigErrors: true}
)

// Handlers is the handlers function hosting the Go step handlers that
// register adds to a registry holding the built-ins (tasker.noop,
// tasker.http). At setup it warns about template steps naming a Go
// handler that is not registered.
func Handlers(register func(*sdk.Registry) error) Function {
	return handlersFunction("handlers", register, nil)
}

// HandlerFunction is a function hosting one Go handler, deployed as a
// Lambda function of its own (`tasker new --function`): template steps name
// it "lambda:<function name>", and it runs h whatever the payload's handler
// name (sdk.HandlerFunction), with the handlers function's logging,
// tracing, metrics and refusal of expired invocations.
func HandlerFunction(h sdk.Handler) Function {
	return handlersFunction("handler", nil, h)
}

func handlersFunction(name string, register func(*sdk.Registry) error, single sdk.Handler) Function {
	return Function{
		Name: name,
		Env:  join(logEnv, templatesEnv, httpEnv),
		setup: func(ctx context.Context, s *setup) (any, error) {
			// tasker.http refuses private and loopback addresses here
			// unless TASKER_HTTP_DENY_PRIVATE=false.
			policy, err := sdk.HTTPPolicyFromEnv(s.getenv, true)
			if err != nil {
				return nil, fmt.Errorf("handlers function: %w", err)
			}
			reg := sdk.NewRegistry(sdk.WithHTTPPolicy(policy))
			if register != nil {
				if err := register(reg); err != nil {
					return nil, fmt.Errorf("register step handlers: %w", err)
				}
			}
			if single != nil {
				// One handler, named by its function: nothing to check.
			} else if set, err := LoadTemplates(s.getenv); err != nil {
				s.log.WarnContext(ctx, "templates not loaded; handler names not checked", "error", err)
			} else {
				for _, t := range set.List() {
					for _, st := range t.Steps {
						if !template.IsBuiltin(st.Handler) && !template.IsLambda(st.Handler) && !reg.Has(st.Handler) {
							s.log.WarnContext(ctx, "a template step names a Go handler this function does not host; its attempts will fail permanently",
								"template", t.Key(), "step", st.Name, "handler", st.Handler)
						}
					}
				}
			}
			o, err := s.observe(ctx, false)
			if err != nil {
				return nil, err
			}
			s.log.InfoContext(ctx, "step handlers ready", "handlers", reg.Names())
			// Handler metrics go out as CloudWatch EMF lines after each
			// invocation: CloudWatch turns them into metrics with no API call.
			metrics := telemetry.NewRegistry()
			emf := &telemetry.EMF{Registry: metrics, W: s.deps.Logs}
			opts := []sdk.Option{sdk.WithLogger(s.log), sdk.WithTracerProvider(o.tp),
				sdk.WithObserver(telemetry.NewHandlerMetrics(metrics)),
				sdk.WithAfterInvoke(func(ctx context.Context) {
					if err := emf.Flush(time.Now()); err != nil {
						s.log.WarnContext(ctx, "write EMF metrics", "error", err)
					}
				})}
			h := sdk.LambdaHandler(reg, opts...)
			if single != nil {
				h = sdk.HandlerFunction(single, opts...)
			}
			return wrap(o, refuseExpired(h, s.now, s.log)), nil
		},
	}
}

// refuseExpired answers an invocation whose attempt deadline has already
// passed (it waited in Lambda's queue, e.g. while the function was
// throttled) with a retryable event_expired failure instead of running the
// handler: the engine has timed that attempt out or is about to, so its
// work would be done twice (docs/deploy.md, "Throttling").
func refuseExpired(h func(context.Context, json.RawMessage) (json.RawMessage, error), now func() time.Time, log *slog.Logger) func(context.Context, json.RawMessage) (json.RawMessage, error) {
	return func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
		var p struct {
			Tasker struct {
				Deadline time.Time `json:"deadline"`
				Step     string    `json:"step"`
				Attempt  int       `json:"attempt"`
			} `json:"tasker"`
		}
		// An undecodable payload is the handler's to report.
		if json.Unmarshal(payload, &p) == nil && !p.Tasker.Deadline.IsZero() {
			if late := now().Sub(p.Tasker.Deadline); late >= 0 {
				log.WarnContext(ctx, "invocation arrived after its attempt's deadline; not run",
					"step", p.Tasker.Step, "attempt", p.Tasker.Attempt, "late_by", late.String())
				err := fmt.Errorf("invocation arrived %s after the attempt's deadline %s; the handler did not run",
					late.Round(time.Millisecond), p.Tasker.Deadline.Format(time.RFC3339))
				return sdk.ErrorResponse(sdk.WithCode(err, contract.CodeEventExpired)), nil
			}
		}
		return h(ctx, payload)
	}
}

func setupScheduler(ctx context.Context, s *setup) (any, error) {
	o, eng, err := s.observedEngine(ctx)
	if err != nil {
		return nil, err
	}
	awsCfg, err := s.aws(ctx)
	if err != nil {
		return nil, err
	}
	h := &SchedulerHandler{Engine: eng, Logger: s.log,
		Visibility: awssqs.NewFromConfig(awsCfg), QueueURL: s.env(EnvSchedulerQueueURL)}
	return wrap(o, h.Handle), nil
}

func setupTrigger(ctx context.Context, s *setup) (any, error) {
	o, eng, err := s.observedEngine(ctx)
	if err != nil {
		return nil, err
	}
	h := &trigger.Handler{Creator: eng, Templates: eng.Templates(), Logger: s.log}
	return wrap(o, h.Handle), nil
}

func setupAPI(ctx context.Context, s *setup) (any, error) {
	o, eng, err := s.observedEngine(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.verifier(ctx)
	if err != nil {
		return nil, err
	}
	h, err := api.New(api.Config{Engine: eng, Store: s.store, Auth: v, Logger: s.log, TracerProvider: o.tp})
	if err != nil {
		return nil, err
	}
	return wrap(o, APIHandler(webui.Mount(h))), nil
}

func (s *setup) observedEngine(ctx context.Context) (*observer, *engine.Engine, error) {
	if err := checkEnv(s.fn.Name, s.fn.Env, s.getenv); err != nil {
		return nil, nil, err
	}
	o, err := s.observe(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	eng, err := s.engine(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return o, eng, nil
}

// APIHandler adapts an http.Handler to API Gateway HTTP API (payload
// format 2.0) events.
func APIHandler(h http.Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	adapter := httpadapter.NewV2(h)
	return adapter.ProxyWithContext
}

var errAuthOff = errors.New("authentication is not configured")

// verifier builds the API's token verifier (auth.FromEnv), reading the
// HS256 secret from Secrets Manager when only its ARN is given. Without
// any key source it fails unless TASKER_AUTH_DISABLED=true.
func (s *setup) verifier(ctx context.Context) (*auth.Verifier, error) {
	getenv := s.getenv
	if arn := s.env(EnvAuthSecretARN); arn != "" && s.env(auth.EnvHS256Secret) == "" {
		secret, err := s.getSecret(ctx, arn)
		if err != nil {
			return nil, fmt.Errorf("read the HS256 secret %s (%s): %w", arn, EnvAuthSecretARN, err)
		}
		getenv = func(k string) string {
			if k == auth.EnvHS256Secret {
				return secret
			}
			return s.getenv(k)
		}
	}
	v, err := auth.FromEnv(ctx, getenv, s.log)
	if err != nil {
		return nil, err
	}
	if v != nil {
		return v, nil
	}
	off, err := config.Bool(s.getenv, EnvAuthDisabled, false)
	if err != nil {
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	if off {
		s.log.WarnContext(ctx, "AUTHENTICATION IS DISABLED: every API route is open to anyone who can reach it ("+EnvAuthDisabled+"=true)")
		return nil, nil
	}
	return nil, fmt.Errorf("%w: set %s (production), %s or %s, or %s=true to run the API open",
		errAuthOff, auth.EnvJWKSURL, auth.EnvHS256Secret, EnvAuthSecretARN, EnvAuthDisabled)
}

// Connection retries of the migrator: a database created in the same
// deploy (an RDS Proxy's target in particular) accepts connections some
// minutes after CloudFormation reports it complete.
const (
	ConnectPatience   = 5 * time.Minute
	connectFirstPause = time.Second
	connectMaxPause   = 30 * time.Second
)

// waitForDatabase pings until the database answers, pausing 1 s, 2 s, 4 s
// … (at most 30 s) between attempts, and gives up once the pauses add up
// to ConnectPatience or ctx ends, with the last error.
func waitForDatabase(ctx context.Context, ping func(context.Context) error, sleep func(context.Context, time.Duration) error, log *slog.Logger) error {
	pause, waited := connectFirstPause, time.Duration(0)
	for attempt := 1; ; attempt++ {
		err := ping(ctx)
		if err == nil {
			if attempt > 1 {
				log.InfoContext(ctx, "database reachable", "attempts", attempt, "waited", waited.String())
			}
			return nil
		}
		if ctx.Err() != nil || waited >= ConnectPatience {
			return fmt.Errorf("database not reachable after %d attempts over %s: %w", attempt, waited, err)
		}
		log.WarnContext(ctx, "database not reachable yet; retrying", "attempt", attempt, "pause", pause.String(), "error", err)
		if serr := sleep(ctx, pause); serr != nil {
			return fmt.Errorf("database not reachable after %d attempts (%w): %w", attempt, serr, err)
		}
		waited += pause
		pause = min(2*pause, connectMaxPause)
	}
}

func setupMigrate(ctx context.Context, s *setup) (any, error) {
	// Nothing fallible happens here: whatever goes wrong is reported to
	// CloudFormation by the handler.
	cr := &CustomResource{
		Client: s.deps.HTTPClient,
		Logger: s.log,
		Apply: func(ctx context.Context) (migrate.Result, error) {
			if s.configErr != nil {
				return migrate.Result{}, s.configErr
			}
			cfg, err := s.poolConfig(ctx)
			if err != nil {
				return migrate.Result{}, err
			}
			cfg.MinConns, cfg.MaxConns = 0, 1
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				return migrate.Result{}, fmt.Errorf("database pool: %w", err)
			}
			defer pool.Close()
			if err := waitForDatabase(ctx, pool.Ping, s.sleep, s.log); err != nil {
				return migrate.Result{}, err
			}
			return migrate.Up(ctx, pool)
		},
	}
	return cr.Handle, nil
}
