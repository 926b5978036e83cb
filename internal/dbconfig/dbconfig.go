// Package dbconfig turns the environment into a pgx pool configuration,
// the same way in every Lambda function and locally (docs/architecture.md, "Configuration").
//
// Sources, first match wins ("set" means non-empty):
//
//  1. DATABASE_URL — a postgres:// URL or keyword/value DSN, used as is
//     (pool_* parameters included).
//  2. TASKER_DB_SECRET_ARN — a Secrets Manager secret in the shape RDS
//     writes: {"username","password","host","port","dbname","engine"}.
//     TASKER_DB_HOST, TASKER_DB_PORT and TASKER_DB_NAME override the
//     secret's values (e.g. to connect through an RDS Proxy endpoint with
//     the cluster's secret). The secret is read when Load runs and read
//     again before a new connection once it is older than SecretTTL (10
//     minutes), so a rotated password is picked up; if that refresh fails,
//     the cached secret is used.
//  3. TASKER_DB_IAM=true — RDS IAM authentication as TASKER_DB_USER to
//     TASKER_DB_HOST:TASKER_DB_PORT (default 5432) / TASKER_DB_NAME. A
//     fresh token (valid 15 minutes) is built for every new connection in
//     the pool's BeforeConnect with the region and credentials of the AWS
//     configuration.
//
// Nothing set: Load returns an error wrapping ErrNotConfigured (local mode
// then starts an embedded Postgres). Secret and IAM connections use
// sslmode=require (TLS without certificate verification, which RDS and RDS
// Proxy need at least; IAM authentication refuses plain connections);
// TASKER_DB_SSLMODE overrides it, e.g. verify-full with PGSSLROOTCERT.
//
// Pool sizing. In Lambda (AWS_LAMBDA_FUNCTION_NAME is set) an execution
// environment serves one event at a time, so the pool is small and lets
// idle connections go: MaxConns 4, MinConns 0, MaxConnIdleTime 1 minute,
// MaxConnLifetime 15 minutes, HealthCheckPeriod 30 s, and a 10 s connect
// timeout unless the DSN sets one. TASKER_DB_MAX_CONNS and
// TASKER_DB_MAX_CONN_IDLE_TIME (a Go duration) override the maximum and
// the idle time anywhere; a pool_max_conns in DATABASE_URL wins over the
// Lambda default. Outside Lambda pgx's defaults apply.
//
// RDS Proxy. The proxy pins a client session to one database connection
// when it sees a prepared statement: named ones (pgx's default statement
// cache) and, as other drivers report, the extended protocol's unnamed
// statement too (Parse/Bind/Execute, pgx's exec and describe_exec modes).
// A pinned session stops the proxy from multiplexing, which is the point of
// it. TASKER_DB_PROXY=true therefore sets DefaultQueryExecMode to
// QueryExecModeSimpleProtocol: every query is one simple-protocol Query
// message with the arguments interpolated by pgx (safely, as literals, with
// standard_conforming_strings on), which the proxy never pins. This is not
// automatic in Lambda because a direct connection (no proxy) profits from
// the statement cache. The proxy's DatabaseConnectionsCurrentlySessionPinned
// metric (alarmed on in template.yaml) tells whether sessions still pin;
// TASKER_DB_QUERY_EXEC_MODE accepts pgx's names (cache_statement,
// cache_describe, describe_exec, exec, simple_protocol) and wins over
// TASKER_DB_PROXY, for measuring another mode.
package dbconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/config"
)

// Environment variables.
const (
	EnvDatabaseURL     = "DATABASE_URL"
	EnvSecretARN       = "TASKER_DB_SECRET_ARN"
	EnvIAM             = "TASKER_DB_IAM"
	EnvHost            = "TASKER_DB_HOST"
	EnvPort            = "TASKER_DB_PORT"
	EnvUser            = "TASKER_DB_USER"
	EnvName            = "TASKER_DB_NAME"
	EnvSSLMode         = "TASKER_DB_SSLMODE"
	EnvProxy           = "TASKER_DB_PROXY"
	EnvQueryExecMode   = "TASKER_DB_QUERY_EXEC_MODE"
	EnvMaxConns        = "TASKER_DB_MAX_CONNS"
	EnvMaxConnIdleTime = "TASKER_DB_MAX_CONN_IDLE_TIME"
	envLambdaFunction  = "AWS_LAMBDA_FUNCTION_NAME"
)

// Defaults.
const (
	DefaultPort             = 5432
	DefaultSSLMode          = "require"
	LambdaMaxConns          = 4
	LambdaMaxConnIdleTime   = time.Minute
	LambdaMaxConnLifetime   = 15 * time.Minute
	LambdaHealthCheckPeriod = 30 * time.Second
	LambdaConnectTimeout    = 10 * time.Second
	SecretTTL               = 10 * time.Minute
	defaultSecretDatabase   = "postgres"
	// MaxMaxConns bounds TASKER_DB_MAX_CONNS (from 1).
	MaxMaxConns = 1 << 20
	// MinMaxConnIdleTime and MaxMaxConnIdleTime bound
	// TASKER_DB_MAX_CONN_IDLE_TIME.
	MinMaxConnIdleTime       = time.Second
	MaxMaxConnIdleTime       = 24 * time.Hour
	secretManagerCallTimeout = 10 * time.Second
)

// ErrNotConfigured is returned (wrapped) when no database is configured.
var ErrNotConfigured = errors.New("no database configured")

// Loader loads a pool configuration. The zero value of each function
// field means the real thing; tests inject fakes.
type Loader struct {
	// Getenv reads the environment (required).
	Getenv func(string) string
	// AWSConfig loads the AWS configuration; called only for a secret or
	// IAM authentication.
	AWSConfig func(ctx context.Context) (aws.Config, error)
	// GetSecret returns the SecretString of a secret (default: Secrets
	// Manager GetSecretValue with the AWS configuration).
	GetSecret func(ctx context.Context, arn string) (string, error)
	// AuthToken builds an IAM authentication token for user at endpoint
	// ("host:port") in region (default: auth.BuildAuthToken with the AWS
	// configuration's credentials).
	AuthToken func(ctx context.Context, endpoint, region, user string) (string, error)
	// Now tells the time for the secret cache (default time.Now).
	Now func() time.Time
}

// Load reads the configuration with the real Secrets Manager and RDS token
// builder; see the package doc.
func Load(ctx context.Context, getenv func(string) string, awsCfg func(ctx context.Context) (aws.Config, error)) (*pgxpool.Config, error) {
	return Loader{Getenv: getenv, AWSConfig: awsCfg}.Load(ctx)
}

// Load reads the configuration; see the package doc.
func (l Loader) Load(ctx context.Context) (*pgxpool.Config, error) {
	if l.Getenv == nil {
		return nil, errors.New("dbconfig: Loader.Getenv is nil")
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	env := func(k string) string { return strings.TrimSpace(l.Getenv(k)) }

	var (
		cfg *pgxpool.Config
		err error
	)
	switch {
	case env(EnvDatabaseURL) != "":
		cfg, err = pgxpool.ParseConfig(env(EnvDatabaseURL))
		if err != nil {
			// pgx's message may quote the URL, password included.
			return nil, fmt.Errorf("%s: %v", EnvDatabaseURL, redact(err, env(EnvDatabaseURL)))
		}
	case env(EnvSecretARN) != "":
		cfg, err = l.fromSecret(ctx, env)
	case env(EnvIAM) != "":
		on, perr := config.Bool(env, EnvIAM, false)
		if perr != nil {
			return nil, perr
		}
		if !on {
			return nil, fmt.Errorf("%w: %s is false and neither %s nor %s is set", ErrNotConfigured, EnvIAM, EnvDatabaseURL, EnvSecretARN)
		}
		cfg, err = l.fromIAM(ctx, env)
	default:
		return nil, fmt.Errorf("%w: set %s, %s, or %s=true with %s, %s and %s",
			ErrNotConfigured, EnvDatabaseURL, EnvSecretARN, EnvIAM, EnvHost, EnvUser, EnvName)
	}
	if err != nil {
		return nil, err
	}
	if err := tune(cfg, env); err != nil {
		return nil, err
	}
	return cfg, nil
}

// redact replaces the password of a URL in an error message.
func redact(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
			msg = strings.ReplaceAll(msg, url.QueryEscape(p), "xxxxx")
		}
	}
	return msg
}

// rdsSecret is the JSON of an RDS database secret.
type rdsSecret struct {
	Username string          `json:"username"`
	Password string          `json:"password"`
	Host     string          `json:"host"`
	Port     json.RawMessage `json:"port"` // a number, or a string
	DBName   string          `json:"dbname"`
	Engine   string          `json:"engine"`
}

func parseSecret(arn, s string) (rdsSecret, error) {
	var sec rdsSecret
	if err := json.Unmarshal([]byte(s), &sec); err != nil {
		return rdsSecret{}, fmt.Errorf("secret %s (%s) is not an RDS secret JSON object: %v", arn, EnvSecretARN, err)
	}
	var missing []string
	if sec.Username == "" {
		missing = append(missing, "username")
	}
	if sec.Password == "" {
		missing = append(missing, "password")
	}
	if len(missing) > 0 {
		return rdsSecret{}, fmt.Errorf("secret %s (%s) lacks %s", arn, EnvSecretARN, strings.Join(missing, " and "))
	}
	switch strings.ToLower(sec.Engine) {
	case "", "postgres", "postgresql", "aurora-postgresql":
	default:
		return rdsSecret{}, fmt.Errorf("secret %s (%s) is for engine %q, not PostgreSQL", arn, EnvSecretARN, sec.Engine)
	}
	return sec, nil
}

func (sec rdsSecret) port() (int, error) {
	raw := strings.Trim(strings.TrimSpace(string(sec.Port)), `"`)
	if raw == "" || raw == "null" {
		return DefaultPort, nil
	}
	return parsePort(raw)
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a TCP port", s)
	}
	return n, nil
}

func (l Loader) awsConfig(ctx context.Context, why string) (aws.Config, error) {
	if l.AWSConfig == nil {
		return aws.Config{}, fmt.Errorf("%s needs an AWS configuration, and none was provided", why)
	}
	cfg, err := l.AWSConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("%s: load AWS configuration: %w", why, err)
	}
	return cfg, nil
}

func (l Loader) fromSecret(ctx context.Context, env func(string) string) (*pgxpool.Config, error) {
	arn := env(EnvSecretARN)
	get := l.GetSecret
	if get == nil {
		awsCfg, err := l.awsConfig(ctx, EnvSecretARN)
		if err != nil {
			return nil, err
		}
		client := secretsmanager.NewFromConfig(awsCfg)
		get = func(ctx context.Context, arn string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, secretManagerCallTimeout)
			defer cancel()
			out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
			if err != nil {
				return "", err
			}
			if out.SecretString != nil {
				return *out.SecretString, nil
			}
			return string(out.SecretBinary), nil
		}
	}
	fetch := func(ctx context.Context) (rdsSecret, error) {
		s, err := get(ctx, arn)
		if err != nil {
			return rdsSecret{}, fmt.Errorf("read secret %s (%s): %w", arn, EnvSecretARN, err)
		}
		return parseSecret(arn, s)
	}
	sec, err := fetch(ctx)
	if err != nil {
		return nil, err
	}

	host := firstNonEmpty(env(EnvHost), sec.Host)
	if host == "" {
		return nil, fmt.Errorf("secret %s (%s) has no host and %s is not set", arn, EnvSecretARN, EnvHost)
	}
	port, err := sec.port()
	if err != nil {
		return nil, fmt.Errorf("secret %s (%s): %w", arn, EnvSecretARN, err)
	}
	if port, err = config.Int(env, EnvPort, port, 1, 65535); err != nil {
		return nil, err
	}
	sslmode, err := sslMode(env)
	if err != nil {
		return nil, err
	}
	dbname := firstNonEmpty(env(EnvName), sec.DBName, defaultSecretDatabase)
	cfg, err := parseParts(host, port, sec.Username, sec.Password, dbname, sslmode)
	if err != nil {
		return nil, fmt.Errorf("secret %s (%s): %w", arn, EnvSecretARN, err)
	}

	// Re-read the secret for new connections once the copy is stale, so a
	// rotation is picked up without a cold start.
	cache := &secretCache{sec: sec, at: l.Now(), now: l.Now, fetch: fetch}
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		s := cache.get(ctx)
		cc.User, cc.Password = s.Username, s.Password
		return nil
	}
	return cfg, nil
}

// secretCache holds the last good secret.
type secretCache struct {
	mu    sync.Mutex
	sec   rdsSecret
	at    time.Time
	now   func() time.Time
	fetch func(context.Context) (rdsSecret, error)
}

func (c *secretCache) get(ctx context.Context) rdsSecret {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.at) < SecretTTL {
		return c.sec
	}
	if s, err := c.fetch(ctx); err == nil {
		c.sec, c.at = s, c.now()
	}
	// On failure keep the old secret and try again at the next connect.
	return c.sec
}

func (l Loader) fromIAM(ctx context.Context, env func(string) string) (*pgxpool.Config, error) {
	var missing []string
	for _, k := range []string{EnvHost, EnvUser, EnvName} {
		if env(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s=true needs %s", EnvIAM, strings.Join(missing, ", "))
	}
	host, user, dbname := env(EnvHost), env(EnvUser), env(EnvName)
	port, err := config.Int(env, EnvPort, DefaultPort, 1, 65535)
	if err != nil {
		return nil, err
	}
	sslmode, err := sslMode(env)
	if err != nil {
		return nil, err
	}
	awsCfg, err := l.awsConfig(ctx, EnvIAM+"=true")
	if err != nil {
		return nil, err
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%s=true needs an AWS region (AWS_REGION) for the authentication token", EnvIAM)
	}
	token := l.AuthToken
	if token == nil {
		if awsCfg.Credentials == nil {
			return nil, fmt.Errorf("%s=true needs AWS credentials for the authentication token", EnvIAM)
		}
		creds := awsCfg.Credentials
		token = func(ctx context.Context, endpoint, region, user string) (string, error) {
			return auth.BuildAuthToken(ctx, endpoint, region, user, creds)
		}
	}
	// The password is set per connection; parse without one.
	cfg, err := parseParts(host, port, user, "", dbname, sslmode)
	if err != nil {
		return nil, fmt.Errorf("%s=true: %w", EnvIAM, err)
	}
	endpoint := net.JoinHostPort(host, strconv.Itoa(port))
	region := awsCfg.Region
	cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		tok, err := token(ctx, endpoint, region, user)
		if err != nil {
			return fmt.Errorf("build RDS IAM auth token for %s at %s: %w", user, endpoint, err)
		}
		cc.Password = tok
		return nil
	}
	return cfg, nil
}

// parseParts builds a pool config from connection parts. The parts go
// through a URL so that pgx applies its usual TLS and fallback rules for
// sslmode.
func parseParts(host string, port int, user, password, dbname, sslmode string) (*pgxpool.Config, error) {
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + dbname,
		RawQuery: url.Values{"sslmode": {sslmode}}.Encode(),
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, errors.New(redact(err, u.String()))
	}
	return cfg, nil
}

func tune(cfg *pgxpool.Config, env func(string) string) error {
	inLambda := env(envLambdaFunction) != ""
	if inLambda {
		if !strings.Contains(env(EnvDatabaseURL), "pool_max_conns") {
			cfg.MaxConns = LambdaMaxConns
		}
		cfg.MinConns = 0
		cfg.MaxConnIdleTime = LambdaMaxConnIdleTime
		cfg.MaxConnLifetime = LambdaMaxConnLifetime
		cfg.HealthCheckPeriod = LambdaHealthCheckPeriod
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = LambdaConnectTimeout
		}
	}
	if env(EnvMaxConns) != "" {
		n, err := config.Int(env, EnvMaxConns, 0, 1, MaxMaxConns)
		if err != nil {
			return err
		}
		cfg.MaxConns = int32(n)
		if cfg.MinConns > cfg.MaxConns {
			cfg.MinConns = cfg.MaxConns
		}
	}
	idle, err := config.Duration(env, EnvMaxConnIdleTime, cfg.MaxConnIdleTime, MinMaxConnIdleTime, MaxMaxConnIdleTime)
	if err != nil {
		return err
	}
	cfg.MaxConnIdleTime = idle
	proxy, err := config.Bool(env, EnvProxy, false)
	if err != nil {
		return err
	}
	if proxy {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	if env(EnvQueryExecMode) != "" {
		name, err := config.Enum(env, EnvQueryExecMode, "", "cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol")
		if err != nil {
			return err
		}
		cfg.ConnConfig.DefaultQueryExecMode = execModes[name]
	}
	if cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		after := cfg.AfterConnect
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			registerSimpleProtocolTypes(c.TypeMap())
			if after != nil {
				return after(ctx, c)
			}
			return nil
		}
	}
	return nil
}

// registerSimpleProtocolTypes names the PostgreSQL types of the Go values
// pgx cannot encode without the server's parameter description, which the
// simple protocol never asks for: github.com/google/uuid's UUID and its
// slices (the engine passes step ids as uuid[]).
func registerSimpleProtocolTypes(m *pgtype.Map) {
	m.RegisterDefaultPgType(uuid.UUID{}, "uuid")
	m.RegisterDefaultPgType([]uuid.UUID(nil), "_uuid")
}

// sslMode reads TASKER_DB_SSLMODE (default require).
func sslMode(env func(string) string) (string, error) {
	return config.Enum(env, EnvSSLMode, DefaultSSLMode, "disable", "allow", "prefer", "require", "verify-ca", "verify-full")
}

var execModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
