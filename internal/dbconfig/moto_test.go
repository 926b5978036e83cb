package dbconfig_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/dbconfig"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/testenv"
)

// TestSecretFromMotoSecretsManager reads an RDS-shaped secret from Secrets
// Manager on moto with the SDK's client, connects with it as a role of its
// own, then rotates the role's password and the secret (as RDS rotation
// does): once the cached copy is stale, new connections use the new one.
func TestSecretFromMotoSecretsManager(t *testing.T) {
	t.Parallel()
	moto := testenv.Moto(t)
	dbURL := pgtest.URL(t)
	admin, err := pgx.Connect(ctx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	role := strings.ReplaceAll(testenv.UniqueName("tasker_secret"), "-", "_")
	if _, err := admin.Exec(ctx(t), "CREATE ROLE "+role+" LOGIN PASSWORD 'first-Pa55'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })

	cc, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	secretJSON := func(password string) string {
		b, _ := json.Marshal(map[string]any{"username": role, "password": password, "host": cc.Host, "port": cc.Port, "dbname": cc.Database, "engine": "postgres"})
		return string(b)
	}
	arn := lambdatest.Secret(t, moto, "tasker-db", secretJSON("first-Pa55"))

	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg, err := dbconfig.Loader{
		Getenv:    getenv(map[string]string{"TASKER_DB_SECRET_ARN": arn, "TASKER_DB_SSLMODE": "disable"}),
		AWSConfig: func(context.Context) (aws.Config, error) { return testenv.AWSConfig(moto), nil },
		Now:       clock,
	}.Load(ctx(t))
	if err != nil {
		t.Fatalf("Load with the secret on moto: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	whoami := func() string {
		t.Helper()
		var user string
		if err := pool.QueryRow(ctx(t), "SELECT current_user").Scan(&user); err != nil {
			t.Fatalf("query through the pool: %v", err)
		}
		return user
	}
	if got := whoami(); got != role {
		t.Fatalf("connected as %q, want the secret's %q", got, role)
	}

	// Rotate: the role's password, then the secret's current version.
	if _, err := admin.Exec(ctx(t), "ALTER ROLE "+role+" PASSWORD 'second-Pa55'"); err != nil {
		t.Fatal(err)
	}
	if _, err := secretsmanager.NewFromConfig(testenv.AWSConfig(moto)).PutSecretValue(ctx(t), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(arn), SecretString: aws.String(secretJSON("second-Pa55")),
	}); err != nil {
		t.Fatal(err)
	}
	stale := cc.Copy()
	stale.User, stale.Password = role, "first-Pa55"
	if c, err := pgx.ConnectConfig(ctx(t), stale); err == nil {
		c.Close(context.Background())
		t.Fatal("the old password still logs in: the server checks no passwords, so this test would prove nothing")
	}
	mu.Lock()
	now = now.Add(dbconfig.SecretTTL + time.Second)
	mu.Unlock()
	pool.Reset() // new connections from here on
	if got := whoami(); got != role {
		t.Fatalf("after rotation connected as %q", got)
	}
	if pw := connect(t, cfg).Password; pw != "second-Pa55" {
		t.Errorf("after rotation the pool connects with %q, want the rotated password", pw)
	}
}

// TestSecretMissingOnMoto: a secret ARN that does not exist fails Load
// with an error naming the ARN and the variable.
func TestSecretMissingOnMoto(t *testing.T) {
	t.Parallel()
	moto := testenv.Moto(t)
	arn := "arn:aws:secretsmanager:us-east-1:" + testenv.MotoAccountID + ":secret:" + testenv.UniqueName("absent") + "-AbCdEf"
	_, err := dbconfig.Load(ctx(t), getenv(map[string]string{"TASKER_DB_SECRET_ARN": arn}),
		func(context.Context) (aws.Config, error) { return testenv.AWSConfig(moto), nil })
	if err == nil || !strings.Contains(err.Error(), arn) || !strings.Contains(err.Error(), "TASKER_DB_SECRET_ARN") || !strings.Contains(err.Error(), "ResourceNotFound") {
		t.Errorf("Load with a missing secret: %v", err)
	}
}
