// Package lambdaapp is the shared wiring of Tasker's Lambda functions
// (functions/*, docs/architecture.md, "Flow" and "Layout"): each function's main is one call,
//
//	func main() { lambdaapp.Main(lambdaapp.Scheduler) }
//
// and everything else — configuration from the environment, the JSON
// logger, the engine with its adapters, the event handlers — lives here
// where it can be tested in-process.
//
// The functions:
//
//   - API: API Gateway HTTP API (payload v2) events through
//     aws-lambda-go-api-proxy to the internal/api handler. Authentication
//     is required: a function without TASKER_AUTH_JWKS_URL,
//     TASKER_AUTH_HS256_SECRET or TASKER_AUTH_HS256_SECRET_ARN refuses to
//     start unless TASKER_AUTH_DISABLED=true.
//   - Scheduler: SQS batches of scheduler messages (wake-ups and Lambda
//     destination records) answered with batchItemFailures, and the
//     EventBridge "Scheduled Event", which runs the sweep.
//   - Handlers: the registered Go step handlers and built-ins, dispatched
//     on the payload's tasker.handler.
//   - Trigger: S3 and EventBridge events, matched against the templates'
//     triggers (internal/trigger).
//   - Migrate: the CloudFormation custom resource that applies the
//     migrations on create and update and always answers CloudFormation.
//
// Setup runs once per execution environment (cold start): one pgx pool,
// sized for Lambda by dbconfig, one SQS client and one Lambda client per
// container. A setup error is logged and ends the process, which Lambda
// reports as an initialisation error and retries on the next event; the
// Migrate function does nothing fallible at setup, so it can always answer
// CloudFormation.
//
// Templates come from TASKER_TEMPLATES_DIR when set (e.g. a directory in a
// Lambda layer, /opt/templates), else from the templates embedded in the
// binary. AWS clients use the SDK's standard configuration, so the
// standard AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_LAMBDA variables
// redirect them (tests point them at moto_server and a fake Lambda).
package lambdaapp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/taskerhq/tasker/internal/blob"
	tconfig "github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/dbconfig"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	lambdainvoke "github.com/taskerhq/tasker/internal/invoke/lambda"
	"github.com/taskerhq/tasker/internal/queue/sqs"
	"github.com/taskerhq/tasker/internal/retention"
	"github.com/taskerhq/tasker/internal/service"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/templates"
)

// Deps is what a function's setup takes from its surroundings. The zero
// value means the real Lambda environment; tests replace parts.
type Deps struct {
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Logs receives the JSON log (default os.Stdout, which Lambda ships to
	// CloudWatch Logs).
	Logs io.Writer
	// AWSConfig loads the AWS configuration (default
	// config.LoadDefaultConfig; called at most once per setup).
	AWSConfig func(ctx context.Context) (aws.Config, error)
	// GetSecret returns a Secrets Manager secret's string (default:
	// GetSecretValue with the AWS configuration).
	GetSecret func(ctx context.Context, arn string) (string, error)
	// HTTPClient sends custom resource responses (default: a client with a
	// 30 s timeout).
	HTTPClient *http.Client
	// Publisher, when set, also receives the engine's lifecycle events
	// (which always go to the log, to EMF metrics and, with
	// TASKER_EVENT_BUS, to EventBridge).
	Publisher engine.Publisher
	// SpanExporter, when set, receives the function's spans instead of
	// the exporter OTEL_TRACES_EXPORTER names (tests).
	SpanExporter sdktrace.SpanExporter
	// Now is the clock (default time.Now); tests pass a fixed one.
	Now func() time.Time
	// Sleep waits between the migrator's connection attempts (default: a
	// timer that stops when ctx ends); tests pass one that only records.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Function is one Lambda function of the deployment.
type Function struct {
	// Name is the function's directory under functions/.
	Name string
	// Env lists the environment variables the function reads.
	Env   []EnvVar
	setup func(ctx context.Context, s *setup) (any, error)
	// reportsConfigErrors marks the migrator, a CloudFormation custom
	// resource: its invalid configuration is reported to CloudFormation
	// by the handler (setup.configErr) rather than failing the cold
	// start, which would leave the stack waiting for a response.
	reportsConfigErrors bool
}

// Handler runs the function's setup and returns its handler, a value for
// lambda.Start. ctx must outlive the handler (the API's JWKS refresh runs
// on it). The services the setup starts (tracing, the EventBridge
// publisher) run for the life of the process; Main stops them at shutdown.
func (f Function) Handler(ctx context.Context, d Deps) (any, error) {
	h, _, err := f.build(ctx, d)
	return h, err
}

// build runs the setup and returns the handler and the services it
// started; on error, none is left running.
func (f Function) build(ctx context.Context, d Deps) (any, service.Group, error) {
	s := newSetup(f, d)
	if s.configErr != nil && !f.reportsConfigErrors {
		return nil, nil, s.configErr
	}
	h, err := f.setup(ctx, s)
	if err != nil {
		s.services.Stop()
		return nil, nil, err
	}
	return h, s.services, nil
}

// Main sets the function up and hands its handler to the Lambda runtime.
// A setup error is logged and exits the process with status 1. When the
// runtime shuts the function down (SIGTERM, sent when an extension such as
// the ADOT layer is registered), the services stop, exporting what they
// buffered; each invocation has flushed already (wrap).
func Main(f Function) {
	h, services, err := f.build(context.Background(), Deps{})
	if err != nil {
		NewLogger(os.Stdout, os.Getenv).Error("function setup failed", "function", f.Name, "error", err.Error())
		os.Exit(1)
	}
	lambda.StartWithOptions(h, lambda.WithEnableSIGTERM(services.Stop))
}

// setup carries one function's dependencies while it is being built.
type setup struct {
	fn     Function
	deps   Deps
	getenv func(string) string
	log    *slog.Logger
	// configErr reports an invalid variable read for every function
	// (LOG_LEVEL).
	configErr error
	// services are the long-running parts the setup started, in order.
	services service.Group

	// store is the engine's store once engine has run (the API reads it).
	store *store.Store

	awsOnce sync.Once
	awsCfg  aws.Config
	awsErr  error
}

func newSetup(f Function, d Deps) *setup {
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.Logs == nil {
		d.Logs = os.Stdout
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	s := &setup{fn: f, deps: d, getenv: d.Getenv, log: NewLogger(d.Logs, d.Getenv)}
	if _, err := tconfig.LogLevel(d.Getenv); err != nil {
		s.configErr = fmt.Errorf("%s function: %w", f.Name, err)
	}
	return s
}

func (s *setup) now() time.Time {
	if s.deps.Now != nil {
		return s.deps.Now()
	}
	return time.Now()
}

func (s *setup) sleep(ctx context.Context, d time.Duration) error {
	if s.deps.Sleep != nil {
		return s.deps.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *setup) env(name string) string { return strings.TrimSpace(s.getenv(name)) }

// aws returns the AWS configuration, loading it once.
func (s *setup) aws(ctx context.Context) (aws.Config, error) {
	s.awsOnce.Do(func() {
		if s.deps.AWSConfig != nil {
			s.awsCfg, s.awsErr = s.deps.AWSConfig(ctx)
		} else {
			s.awsCfg, s.awsErr = config.LoadDefaultConfig(ctx)
		}
		if s.awsErr != nil {
			s.awsErr = fmt.Errorf("load AWS configuration: %w", s.awsErr)
		}
	})
	return s.awsCfg, s.awsErr
}

func (s *setup) getSecret(ctx context.Context, arn string) (string, error) {
	if s.deps.GetSecret != nil {
		return s.deps.GetSecret(ctx, arn)
	}
	cfg, err := s.aws(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", err
	}
	if out.SecretString != nil {
		return *out.SecretString, nil
	}
	return string(out.SecretBinary), nil
}

// poolConfig reads the database configuration (dbconfig).
func (s *setup) poolConfig(ctx context.Context) (*pgxpool.Config, error) {
	loader := dbconfig.Loader{Getenv: s.getenv, AWSConfig: s.aws}
	if s.deps.GetSecret != nil {
		loader.GetSecret = s.deps.GetSecret
	}
	return loader.Load(ctx)
}

// LoadTemplates loads the templates of TASKER_TEMPLATES_DIR, or the
// embedded ones when it is not set, applying the environments: overrides
// TASKER_ENV selects.
func LoadTemplates(getenv func(string) string) (*template.Set, error) {
	opts := template.Options{Env: strings.TrimSpace(getenv(EnvTemplatesEnv))}
	if dir := strings.TrimSpace(getenv(EnvTemplatesDir)); dir != "" {
		set, err := template.LoadDir(dir, opts)
		if err != nil {
			return nil, fmt.Errorf("templates in %s (%s): %w", dir, EnvTemplatesDir, err)
		}
		return set, nil
	}
	set, err := template.LoadFS(templates.FS, opts)
	if err != nil {
		return nil, fmt.Errorf("embedded templates: %w", err)
	}
	return set, nil
}

// engine builds the engine with its AWS adapters: the pgx pool (not yet
// connected), the templates, the SQS scheduler queue and the Lambda
// invoker, publishing and tracing through o.
func (s *setup) engine(ctx context.Context, o *observer) (*engine.Engine, error) {
	set, err := LoadTemplates(s.getenv)
	if err != nil {
		return nil, err
	}
	maxInFlight, err := tconfig.Int(s.getenv, EnvMaxInFlight, DefaultMaxInFlight, 0, tconfig.MaxInFlightLimit)
	if err != nil {
		return nil, fmt.Errorf("%s function: %w (0: no cap)", s.fn.Name, err)
	}
	adaptive, err := tconfig.Bool(s.getenv, EnvAdaptiveConcurrency, true)
	if err != nil {
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	minInFlight, err := tconfig.Int(s.getenv, EnvMinInFlight, 0, 0, tconfig.MaxInFlightLimit)
	if err != nil {
		return nil, fmt.Errorf("%s function: %w (0: a tenth of %s)", s.fn.Name, err, EnvMaxInFlight)
	}
	denyPrivate, err := tconfig.Bool(s.getenv, EnvWebhookDenyPrivate, true)
	if err != nil {
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	invCfg, err := lambdainvoke.ConfigFromEnv(s.getenv)
	if err != nil {
		return nil, err
	}
	poolCfg, err := s.poolConfig(ctx)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	st, err := store.New(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	awsCfg, err := s.aws(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Retention (docs/operating.md, "Retention"): the sweep prunes.
	ret, err := retention.FromEnv(s.getenv)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	exporter, err := retention.NewTarget(ret.Export, func() (retention.S3API, error) {
		return awss3.NewFromConfig(awsCfg), nil
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	var export engine.Exporter
	if exporter != nil {
		export = exporter
	}
	s.store = st
	limits, err := engine.PayloadLimitsFromEnv(s.getenv)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s function: %w", s.fn.Name, err)
	}
	// Large payloads (docs/architecture.md, "Large payloads"): with a
	// bucket, contexts and results over the inline threshold go to S3.
	var blobs engine.Blobs
	if bucket := strings.TrimSpace(s.getenv(EnvPayloadBucket)); bucket != "" {
		blobs = blob.NewS3(awss3.NewFromConfig(awsCfg), bucket)
	}
	eng, err := engine.New(engine.Config{
		Store:              st,
		Templates:          set,
		Queue:              sqs.New(awssqs.NewFromConfig(awsCfg), s.env(EnvSchedulerQueueURL)),
		Invoker:            lambdainvoke.New(awslambda.NewFromConfig(awsCfg), invCfg),
		Publisher:          o.publisher,
		TracerProvider:     o.tp,
		Logger:             s.log,
		InstanceID:         instanceID(s.getenv),
		MaxInFlight:        maxInFlight,
		Retention:          ret.Keep,
		RetentionBatch:     ret.Batch,
		Exporter:           export,
		Blobs:              blobs,
		PayloadInlineBytes: limits.InlineBytes,
		PayloadMaxBytes:    limits.MaxBytes,
		Adaptive:           engine.AdaptiveConfig{Disabled: !adaptive, Min: minInFlight},
		// Deliveries ride on the sweep (the schedule, every minute).
		Webhooks: events.NewWebhooks(events.WebhookOptions{DenyPrivate: denyPrivate}),
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.log.InfoContext(ctx, "engine ready", "function", s.fn.Name, "templates", set.Len(), "instance", eng.InstanceID(),
		"max_conns", poolCfg.MaxConns)
	return eng, nil
}

// DefaultMaxInFlight is the in-flight cap of a deployment that does not set
// TASKER_MAX_IN_FLIGHT: a cap keeps adaptive concurrency on, and 50 is well
// inside a default Lambda account's concurrency and a small database's
// connections (docs/operating.md, "Adaptive concurrency").
const DefaultMaxInFlight = 50

// instanceID names this execution environment on claims and transitions.
func instanceID(getenv func(string) string) string {
	name := strings.TrimSpace(getenv(envFunctionName))
	if name == "" {
		return ""
	}
	return name + "/" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
}
