package dbconfig_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/dbconfig"
	"github.com/taskerhq/tasker/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func awsCfg(region string) func(context.Context) (aws.Config, error) {
	return func(context.Context) (aws.Config, error) {
		return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}, nil
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// connect runs the pool's BeforeConnect on a copy of its connection config,
// as pgxpool does for every new connection.
func connect(t *testing.T, cfg *pgxpool.Config) *pgx.ConnConfig {
	t.Helper()
	cc := cfg.ConnConfig.Copy()
	if cfg.BeforeConnect != nil {
		if err := cfg.BeforeConnect(ctx(t), cc); err != nil {
			t.Fatalf("BeforeConnect: %v", err)
		}
	}
	return cc
}

func TestDatabaseURL(t *testing.T) {
	t.Parallel()
	cfg, err := dbconfig.Load(ctx(t), getenv(map[string]string{
		"DATABASE_URL":         "postgres://app:s3cret@db.example.com:6543/tasker?sslmode=disable&pool_max_conns=7",
		"TASKER_DB_SECRET_ARN": "arn:ignored", // DATABASE_URL wins
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.ConnConfig
	if cc.Host != "db.example.com" || cc.Port != 6543 || cc.User != "app" || cc.Password != "s3cret" || cc.Database != "tasker" || cc.TLSConfig != nil {
		t.Errorf("conn config %s:%d %s/%s pw=%q tls=%v", cc.Host, cc.Port, cc.User, cc.Database, cc.Password, cc.TLSConfig != nil)
	}
	if cfg.MaxConns != 7 {
		t.Errorf("MaxConns = %d, want 7 from pool_max_conns", cfg.MaxConns)
	}
	if cc.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		t.Errorf("exec mode %v without a proxy, want the pgx default", cc.DefaultQueryExecMode)
	}
}

func TestDatabaseURLErrorHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := dbconfig.Load(ctx(t), getenv(map[string]string{"DATABASE_URL": "postgres://app:hunter2@db:notaport/x"}), nil)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("err = %v, want one naming DATABASE_URL", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error leaks the password: %v", err)
	}
}

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{nil, {"TASKER_DB_IAM": "false"}, {"DATABASE_URL": "  "}} {
		_, err := dbconfig.Load(ctx(t), getenv(env), nil)
		if !errors.Is(err, dbconfig.ErrNotConfigured) {
			t.Errorf("%v: err = %v, want ErrNotConfigured", env, err)
			continue
		}
		if env == nil {
			for _, name := range []string{"DATABASE_URL", "TASKER_DB_SECRET_ARN", "TASKER_DB_IAM"} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		}
	}
	if _, err := dbconfig.Load(ctx(t), getenv(map[string]string{"TASKER_DB_IAM": "maybe"}), nil); err == nil || !strings.Contains(err.Error(), "TASKER_DB_IAM") {
		t.Errorf("TASKER_DB_IAM=maybe: %v", err)
	}
}

const secretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tasker-db-AbCdEf"

type fakeSecrets struct {
	mu    sync.Mutex
	value string
	err   error
	calls int
}

func (f *fakeSecrets) get(_ context.Context, arn string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if arn != secretARN {
		return "", fmt.Errorf("unknown secret %s", arn)
	}
	return f.value, f.err
}

func (f *fakeSecrets) set(value string, err error) {
	f.mu.Lock()
	f.value, f.err = value, err
	f.mu.Unlock()
}

func TestSecret(t *testing.T) {
	t.Parallel()
	const password = `p@ss:w/rd?#% "x"`
	for name, port := range map[string]string{"number": `5433`, "string": `"5433"`} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSecrets{value: fmt.Sprintf(`{"username":"tasker","password":%q,"engine":"postgres","host":"cluster.example.com","port":%s,"dbname":"taskerdb","dbClusterIdentifier":"c"}`, password, port)}
			cfg, err := dbconfig.Loader{Getenv: getenv(map[string]string{"TASKER_DB_SECRET_ARN": secretARN}), GetSecret: f.get}.Load(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			cc := connect(t, cfg)
			if cc.Host != "cluster.example.com" || cc.Port != 5433 || cc.User != "tasker" || cc.Password != password || cc.Database != "taskerdb" {
				t.Errorf("conn config %s:%d %s/%s pw=%q", cc.Host, cc.Port, cc.User, cc.Database, cc.Password)
			}
			if cc.TLSConfig == nil || len(cc.Fallbacks) != 0 {
				t.Errorf("want sslmode=require: TLS without a plain-text fallback (tls=%v, %d fallbacks)", cc.TLSConfig != nil, len(cc.Fallbacks))
			}
		})
	}
}

func TestSecretOverridesAndDefaults(t *testing.T) {
	t.Parallel()
	f := &fakeSecrets{value: `{"username":"u","password":"p","engine":"aurora-postgresql","host":"cluster.example.com"}`}
	cfg, err := dbconfig.Loader{Getenv: getenv(map[string]string{
		"TASKER_DB_SECRET_ARN": secretARN,
		"TASKER_DB_HOST":       "proxy.example.com",
		"TASKER_DB_SSLMODE":    "disable",
	}), GetSecret: f.get}.Load(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	cc := connect(t, cfg)
	if cc.Host != "proxy.example.com" || cc.Port != 5432 || cc.Database != "postgres" || cc.TLSConfig != nil {
		t.Errorf("conn config %s:%d/%s tls=%v; want the proxy host, port 5432, database postgres, no TLS", cc.Host, cc.Port, cc.Database, cc.TLSConfig != nil)
	}
}

func TestSecretErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		value string
		err   error
		want  string
	}{
		"fetch fails":  {err: errors.New("AccessDeniedException"), want: "AccessDeniedException"},
		"not JSON":     {value: "hunter2", want: "not an RDS secret"},
		"no password":  {value: `{"username":"u","host":"h"}`, want: "lacks password"},
		"no user":      {value: `{"password":"p","host":"h"}`, want: "lacks username"},
		"mysql":        {value: `{"username":"u","password":"p","host":"h","engine":"mysql"}`, want: `engine "mysql"`},
		"no host":      {value: `{"username":"u","password":"p"}`, want: "TASKER_DB_HOST"},
		"bad port":     {value: `{"username":"u","password":"p","host":"h","port":"http"}`, want: "not a TCP port"},
		"out of range": {value: `{"username":"u","password":"p","host":"h","port":70000}`, want: "not a TCP port"},
	}
	for name, c := range cases {
		f := &fakeSecrets{value: c.value, err: c.err}
		_, err := dbconfig.Loader{Getenv: getenv(map[string]string{"TASKER_DB_SECRET_ARN": secretARN}), GetSecret: f.get}.Load(ctx(t))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), secretARN) {
			t.Errorf("%s: err = %v, want it to name the secret and say %q", name, err, c.want)
		}
	}
	// Without an injected getter, the AWS configuration is needed.
	_, err := dbconfig.Load(ctx(t), getenv(map[string]string{"TASKER_DB_SECRET_ARN": secretARN}), nil)
	if err == nil || !strings.Contains(err.Error(), "TASKER_DB_SECRET_ARN") {
		t.Errorf("no AWS config: %v", err)
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	f := &fakeSecrets{value: `{"username":"u","password":"old","host":"h"}`}
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg, err := dbconfig.Loader{Getenv: getenv(map[string]string{"TASKER_DB_SECRET_ARN": secretARN}), GetSecret: f.get, Now: clock}.Load(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	f.set(`{"username":"u","password":"new","host":"h"}`, nil)
	if pw := connect(t, cfg).Password; pw != "old" {
		t.Errorf("fresh cache: password %q, want old", pw)
	}
	advance(dbconfig.SecretTTL + time.Second)
	if pw := connect(t, cfg).Password; pw != "new" {
		t.Errorf("after the TTL: password %q, want the rotated one", pw)
	}
	f.set("", errors.New("throttled"))
	advance(dbconfig.SecretTTL + time.Second)
	if pw := connect(t, cfg).Password; pw != "new" {
		t.Errorf("refresh failed: password %q, want the cached one", pw)
	}
}

type tokenCall struct{ endpoint, region, user string }

func TestIAM(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls []tokenCall
	)
	token := func(_ context.Context, endpoint, region, user string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, tokenCall{endpoint, region, user})
		return fmt.Sprintf("token-%d", len(calls)), nil
	}
	cfg, err := dbconfig.Loader{
		Getenv: getenv(map[string]string{
			"TASKER_DB_IAM": "true", "TASKER_DB_HOST": "proxy.example.com", "TASKER_DB_PORT": "5439",
			"TASKER_DB_USER": "tasker_app", "TASKER_DB_NAME": "tasker",
		}),
		AWSConfig: awsCfg("eu-west-1"),
		AuthToken: token,
	}.Load(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.Password != "" {
		t.Errorf("a password %q before BeforeConnect", cfg.ConnConfig.Password)
	}
	first, second := connect(t, cfg), connect(t, cfg)
	if first.Password != "token-1" || second.Password != "token-2" {
		t.Errorf("passwords %q, %q: want a fresh token per connection", first.Password, second.Password)
	}
	want := tokenCall{"proxy.example.com:5439", "eu-west-1", "tasker_app"}
	if len(calls) != 2 || calls[0] != want {
		t.Errorf("token calls %v, want %v twice", calls, want)
	}
	if first.Host != "proxy.example.com" || first.Port != 5439 || first.User != "tasker_app" || first.Database != "tasker" {
		t.Errorf("conn config %s:%d %s/%s", first.Host, first.Port, first.User, first.Database)
	}
	if first.TLSConfig == nil || len(first.Fallbacks) != 0 {
		t.Error("IAM authentication must use TLS without a plain-text fallback")
	}
}

func TestIAMDefaultTokenBuilder(t *testing.T) {
	t.Parallel()
	cfg, err := dbconfig.Load(ctx(t), getenv(map[string]string{
		"TASKER_DB_IAM": "1", "TASKER_DB_HOST": "db.example.com", "TASKER_DB_USER": "tasker_app", "TASKER_DB_NAME": "tasker",
	}), awsCfg("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	tok := connect(t, cfg).Password
	u, err := url.Parse("https://" + tok)
	if err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	q := u.Query()
	if u.Host != "db.example.com:5432" || q.Get("Action") != "connect" || q.Get("DBUser") != "tasker_app" ||
		!strings.Contains(q.Get("X-Amz-Credential"), "/us-east-1/rds-db/") {
		t.Errorf("token %q is not an RDS auth token for tasker_app at db.example.com:5432 in us-east-1", tok)
	}
}

func TestIAMErrors(t *testing.T) {
	t.Parallel()
	_, err := dbconfig.Load(ctx(t), getenv(map[string]string{"TASKER_DB_IAM": "true", "TASKER_DB_HOST": "h"}), awsCfg("us-east-1"))
	if err == nil || !strings.Contains(err.Error(), "TASKER_DB_USER") || !strings.Contains(err.Error(), "TASKER_DB_NAME") || strings.Contains(err.Error(), "TASKER_DB_HOST") {
		t.Errorf("missing user and name: %v", err)
	}
	full := map[string]string{"TASKER_DB_IAM": "true", "TASKER_DB_HOST": "h", "TASKER_DB_USER": "u", "TASKER_DB_NAME": "d"}
	if _, err := dbconfig.Load(ctx(t), getenv(full), awsCfg("")); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: %v", err)
	}
	if _, err := dbconfig.Load(ctx(t), getenv(full), nil); err == nil || !strings.Contains(err.Error(), "AWS configuration") {
		t.Errorf("no AWS config: %v", err)
	}
	failing := func(context.Context) (aws.Config, error) { return aws.Config{}, errors.New("no profile") }
	if _, err := dbconfig.Load(ctx(t), getenv(full), failing); err == nil || !strings.Contains(err.Error(), "no profile") {
		t.Errorf("AWS config fails: %v", err)
	}
	bad := map[string]string{"TASKER_DB_PORT": "x"}
	for k, v := range full {
		bad[k] = v
	}
	if _, err := dbconfig.Load(ctx(t), getenv(bad), awsCfg("us-east-1")); err == nil || !strings.Contains(err.Error(), "TASKER_DB_PORT") {
		t.Errorf("bad port: %v", err)
	}
	cfg, err := dbconfig.Loader{Getenv: getenv(full), AWSConfig: awsCfg("us-east-1"),
		AuthToken: func(context.Context, string, string, string) (string, error) {
			return "", errors.New("expired credentials")
		},
	}.Load(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.BeforeConnect(ctx(t), cfg.ConnConfig.Copy()); err == nil || !strings.Contains(err.Error(), "expired credentials") {
		t.Errorf("token failure: %v", err)
	}
}

func TestLambdaPoolSizing(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://u:p@h/d"
	lambda := map[string]string{"DATABASE_URL": dsn, "AWS_LAMBDA_FUNCTION_NAME": "tasker-scheduler"}
	cfg, err := dbconfig.Load(ctx(t), getenv(lambda), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != dbconfig.LambdaMaxConns || cfg.MinConns != 0 || cfg.MaxConnIdleTime != dbconfig.LambdaMaxConnIdleTime ||
		cfg.MaxConnLifetime != dbconfig.LambdaMaxConnLifetime || cfg.ConnConfig.ConnectTimeout != dbconfig.LambdaConnectTimeout {
		t.Errorf("Lambda pool: max %d min %d idle %v life %v connect %v", cfg.MaxConns, cfg.MinConns, cfg.MaxConnIdleTime, cfg.MaxConnLifetime, cfg.ConnConfig.ConnectTimeout)
	}
	lambda["TASKER_DB_MAX_CONNS"] = "2"
	lambda["TASKER_DB_MAX_CONN_IDLE_TIME"] = "15s"
	if cfg, err = dbconfig.Load(ctx(t), getenv(lambda), nil); err != nil || cfg.MaxConns != 2 || cfg.MaxConnIdleTime != 15*time.Second {
		t.Errorf("overrides: %v, %v", cfg, err)
	}
	lambda["DATABASE_URL"] = dsn + "?pool_max_conns=9&connect_timeout=3"
	delete(lambda, "TASKER_DB_MAX_CONNS")
	if cfg, err = dbconfig.Load(ctx(t), getenv(lambda), nil); err != nil || cfg.MaxConns != 9 || cfg.ConnConfig.ConnectTimeout != 3*time.Second {
		t.Errorf("DSN settings in Lambda: %v", err)
	}
	local, err := dbconfig.Load(ctx(t), getenv(map[string]string{"DATABASE_URL": dsn}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if local.MaxConnIdleTime == dbconfig.LambdaMaxConnIdleTime || local.MaxConnLifetime == dbconfig.LambdaMaxConnLifetime || local.ConnConfig.ConnectTimeout != 0 {
		t.Errorf("Lambda tuning applied outside Lambda: idle %v life %v connect %v", local.MaxConnIdleTime, local.MaxConnLifetime, local.ConnConfig.ConnectTimeout)
	}
	for k, v := range map[string]string{"TASKER_DB_MAX_CONNS": "0", "TASKER_DB_MAX_CONN_IDLE_TIME": "soon"} {
		if _, err := dbconfig.Load(ctx(t), getenv(map[string]string{"DATABASE_URL": dsn, k: v}), nil); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

func TestProxyExecMode(t *testing.T) {
	t.Parallel()
	const dsn = "postgres://u:p@h/d"
	cases := []struct {
		env  map[string]string
		want pgx.QueryExecMode
	}{
		{map[string]string{"TASKER_DB_PROXY": "true"}, pgx.QueryExecModeSimpleProtocol},
		{map[string]string{"TASKER_DB_PROXY": "true", "TASKER_DB_QUERY_EXEC_MODE": "exec"}, pgx.QueryExecModeExec},
		{map[string]string{"TASKER_DB_PROXY": "false"}, pgx.QueryExecModeCacheStatement},
		{map[string]string{"TASKER_DB_PROXY": "true", "TASKER_DB_QUERY_EXEC_MODE": "simple_protocol"}, pgx.QueryExecModeSimpleProtocol},
		{map[string]string{"TASKER_DB_QUERY_EXEC_MODE": "describe_exec"}, pgx.QueryExecModeDescribeExec},
	}
	for _, c := range cases {
		c.env["DATABASE_URL"] = dsn
		cfg, err := dbconfig.Load(ctx(t), getenv(c.env), nil)
		if err != nil {
			t.Errorf("%v: %v", c.env, err)
			continue
		}
		if got := cfg.ConnConfig.DefaultQueryExecMode; got != c.want {
			t.Errorf("%v: exec mode %v, want %v", c.env, got, c.want)
		}
	}
	for k, v := range map[string]string{"TASKER_DB_PROXY": "yes please", "TASKER_DB_QUERY_EXEC_MODE": "fast"} {
		if _, err := dbconfig.Load(ctx(t), getenv(map[string]string{"DATABASE_URL": dsn, k: v}), nil); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

// TestConnectsToPostgres connects for real with configurations from a
// secret and from IAM authentication (the token being the server's
// password; TLS off because the test server has none).
func TestConnectsToPostgres(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	if password == "" {
		password = "ignored-by-trust-auth" // a secret always has one
	}
	dbname := strings.TrimPrefix(u.Path, "/")
	common := map[string]string{
		"TASKER_DB_HOST": u.Hostname(), "TASKER_DB_PORT": u.Port(), "TASKER_DB_NAME": dbname,
		"TASKER_DB_SSLMODE": "disable", "TASKER_DB_PROXY": "true", "AWS_LAMBDA_FUNCTION_NAME": "test",
	}
	with := func(extra map[string]string) func(string) string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return getenv(m)
	}
	var tokens atomic.Int32
	loaders := map[string]dbconfig.Loader{
		"secret": {
			Getenv: with(map[string]string{"TASKER_DB_SECRET_ARN": secretARN}),
			GetSecret: (&fakeSecrets{value: fmt.Sprintf(`{"username":%q,"password":%q,"host":"elsewhere.invalid","engine":"postgres"}`,
				u.User.Username(), password)}).get,
		},
		"iam": {
			Getenv:    with(map[string]string{"TASKER_DB_IAM": "true", "TASKER_DB_USER": u.User.Username()}),
			AWSConfig: awsCfg("us-east-1"),
			AuthToken: func(context.Context, string, string, string) (string, error) { tokens.Add(1); return password, nil },
		},
	}
	for name, l := range loaders {
		cfg, err := l.Load(ctx(t))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pool, err := pgxpool.NewWithConfig(ctx(t), cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var user, db string
		err = pool.QueryRow(ctx(t), "SELECT current_user, current_database()").Scan(&user, &db)
		pool.Close()
		if err != nil {
			t.Fatalf("%s: query: %v", name, err)
		}
		if user != u.User.Username() || db != dbname {
			t.Errorf("%s: connected as %s to %s, want %s to %s", name, user, db, u.User.Username(), dbname)
		}
	}
	if tokens.Load() == 0 {
		t.Error("IAM: no token was built for the connection")
	}
}

// TestInvalidValuesAreErrors: an invalid value is an error naming the
// variable and the accepted values, never a silent default (issue 14).
func TestInvalidValuesAreErrors(t *testing.T) {
	t.Parallel()
	url := map[string]string{"DATABASE_URL": "postgres://u:p@h/d"}
	iam := map[string]string{"TASKER_DB_IAM": "true", "TASKER_DB_HOST": "h", "TASKER_DB_USER": "u", "TASKER_DB_NAME": "d"}
	for _, tc := range []struct {
		base       map[string]string
		name, v    string
		wantSubstr string
	}{
		{url, "TASKER_DB_MAX_CONNS", "-3", `TASKER_DB_MAX_CONNS="-3": want an integer from 1 to 1048576`},
		{url, "TASKER_DB_MAX_CONNS", "0", `TASKER_DB_MAX_CONNS="0": want an integer from 1 to`},
		{url, "TASKER_DB_MAX_CONN_IDLE_TIME", "0s", `TASKER_DB_MAX_CONN_IDLE_TIME="0s": want a duration (such as 30s or 5m) from 1s to 24h`},
		{url, "TASKER_DB_MAX_CONN_IDLE_TIME", "30", `TASKER_DB_MAX_CONN_IDLE_TIME="30"`},
		{url, "TASKER_DB_PROXY", "yes", `TASKER_DB_PROXY="yes": want true or false`},
		{url, "TASKER_DB_QUERY_EXEC_MODE", "fast", `TASKER_DB_QUERY_EXEC_MODE="fast": want one of cache_statement`},
		{iam, "TASKER_DB_IAM", "maybe", `TASKER_DB_IAM="maybe": want true or false`},
		{iam, "TASKER_DB_PORT", "0", `TASKER_DB_PORT="0": want an integer from 1 to 65535`},
		{iam, "TASKER_DB_PORT", "http", `TASKER_DB_PORT="http": want an integer from 1 to 65535`},
		{iam, "TASKER_DB_SSLMODE", "on", `TASKER_DB_SSLMODE="on": want one of disable, allow, prefer, require, verify-ca, verify-full`},
	} {
		e := map[string]string{tc.name: tc.v}
		for k, v := range tc.base {
			if k != tc.name {
				e[k] = v
			}
		}
		_, err := dbconfig.Loader{Getenv: getenv(e), AWSConfig: awsCfg("us-east-1")}.Load(ctx(t))
		if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) {
			t.Errorf("%s=%q: err = %v; want it to contain %q", tc.name, tc.v, err, tc.wantSubstr)
		}
	}
}
