package lambdaapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
	"github.com/taskerhq/tasker/internal/migrate"
	"github.com/taskerhq/tasker/internal/pgtest"
)

type cfnHandler = func(context.Context, cfn.Event) (cfn.Response, error)

func cfnEvent(t *testing.T, requestType, responseURL, physicalID string) cfn.Event {
	t.Helper()
	var ev cfn.Event
	raw := lambdatest.Event(t, "cloudformation-request.json", map[string]string{
		"REQUEST_TYPE": requestType, "RESPONSE_URL": responseURL, "REQUEST_ID": requestType + "-req",
		"PHYSICAL_RESOURCE_ID": physicalID,
	})
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func lastResponse(t *testing.T, s *lambdatest.CFNServer) map[string]any {
	t.Helper()
	rs := s.Responses()
	if len(rs) == 0 {
		t.Fatal("no response sent to CloudFormation")
	}
	r := rs[len(rs)-1]
	if len(r.ContentType) > 0 && r.ContentType[0] != "" {
		t.Errorf("response sent with Content-Type %q; the pre-signed URL wants none", r.ContentType)
	}
	return r.Body
}

// TestMigrateFunction runs the custom resource, set up as in Lambda,
// against a real empty database: Create migrates, Update finds nothing to
// do, Delete answers without a database, and a missing database or a
// modified migration answers FAILED with the reason.
func TestMigrateFunction(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	srv := lambdatest.NewCFNServer(t)
	dbURL := pgtest.EmptyURL(t)
	ms, err := migrate.Load()
	if err != nil {
		t.Fatal(err)
	}
	latest := ms[len(ms)-1].Version

	h := handlerOf[cfnHandler](t, lambdaapp.Migrate, lambdaapp.Deps{Getenv: env{"DATABASE_URL": dbURL}.get, Logs: &logBuffer{}})
	resp, err := h(ctx, cfnEvent(t, "Create", srv.URL+"/create", ""))
	if err != nil {
		t.Fatal(err)
	}
	body := lastResponse(t, srv)
	data, _ := body["Data"].(map[string]any)
	if body["Status"] != "SUCCESS" || body["PhysicalResourceId"] != lambdaapp.SchemaResourceID || body["RequestId"] != "Create-req" ||
		body["LogicalResourceId"] != "DatabaseMigration" || !strings.Contains(body["StackId"].(string), "stack/tasker/") ||
		data["SchemaVersion"] != latest || !strings.Contains(data["Applied"].(string), ms[0].File) {
		t.Errorf("create response %v", body)
	}
	if resp.Status != cfn.StatusSuccess {
		t.Errorf("returned %+v", resp)
	}

	_, err = h(ctx, cfnEvent(t, "Update", srv.URL+"/update", lambdaapp.SchemaResourceID))
	body = lastResponse(t, srv)
	data, _ = body["Data"].(map[string]any)
	if err != nil || body["Status"] != "SUCCESS" || data["Applied"] != "" || data["SchemaVersion"] != latest {
		t.Errorf("update response %v, %v", body, err)
	}

	// A migration edited after it was applied fails the deploy.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE `+migrate.Table+` SET checksum = 'edited' WHERE version = $1`, ms[0].Version); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := h(ctx, cfnEvent(t, "Update", srv.URL+"/update2", lambdaapp.SchemaResourceID)); err != nil {
		t.Fatal(err)
	}
	body = lastResponse(t, srv)
	if body["Status"] != "FAILED" || !strings.Contains(body["Reason"].(string), "changed after it was applied") {
		t.Errorf("modified migration: %v", body)
	}

	// No database configured: Create fails with the reason, Delete succeeds.
	bare := handlerOf[cfnHandler](t, lambdaapp.Migrate, lambdaapp.Deps{Getenv: env{}.get, Logs: &logBuffer{}})
	if _, err := bare(ctx, cfnEvent(t, "Create", srv.URL+"/bare-create", "")); err != nil {
		t.Fatal(err)
	}
	body = lastResponse(t, srv)
	if body["Status"] != "FAILED" || !strings.Contains(body["Reason"].(string), "DATABASE_URL") {
		t.Errorf("create without a database: %v", body)
	}
	if _, err := bare(ctx, cfnEvent(t, "Delete", srv.URL+"/bare-delete", "tasker-schema-old")); err != nil {
		t.Fatal(err)
	}
	body = lastResponse(t, srv)
	if body["Status"] != "SUCCESS" || body["PhysicalResourceId"] != "tasker-schema-old" {
		t.Errorf("delete: %v", body)
	}
}

func TestCustomResourceAlwaysAnswers(t *testing.T) {
	t.Parallel()
	srv := lambdatest.NewCFNServer(t)
	var applied atomic.Int32
	ok := func(context.Context) (migrate.Result, error) {
		applied.Add(1)
		return migrate.Result{Applied: []string{"0001_a.sql"}, Current: "0001"}, nil
	}

	// Delete never touches the database.
	cr := &lambdaapp.CustomResource{Apply: ok}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Delete", srv.URL, "tasker-schema")); err != nil {
		t.Fatal(err)
	}
	if applied.Load() != 0 || lastResponse(t, srv)["Status"] != "SUCCESS" {
		t.Errorf("delete applied %d times, answered %v", applied.Load(), lastResponse(t, srv))
	}

	// An unknown request type fails.
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Replace", srv.URL, "tasker-schema")); err != nil {
		t.Fatal(err)
	}
	if b := lastResponse(t, srv); b["Status"] != "FAILED" || !strings.Contains(b["Reason"].(string), "Replace") {
		t.Errorf("unknown type: %v", b)
	}

	// A panic is an answer too.
	cr = &lambdaapp.CustomResource{Apply: func(context.Context) (migrate.Result, error) { panic("boom") }}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Create", srv.URL, "")); err != nil {
		t.Fatal(err)
	}
	if b := lastResponse(t, srv); b["Status"] != "FAILED" || !strings.Contains(b["Reason"].(string), "panicked: boom") {
		t.Errorf("panic: %v", b)
	}

	// Migrations that outlive the invocation are cut short before the
	// deadline, leaving time to answer.
	cr = &lambdaapp.CustomResource{Reserve: 2 * time.Second, Apply: func(ctx context.Context) (migrate.Result, error) {
		<-ctx.Done()
		return migrate.Result{}, ctx.Err()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := cr.Handle(ctx, cfnEvent(t, "Update", srv.URL, "tasker-schema")); err != nil {
		t.Fatal(err)
	}
	if b := lastResponse(t, srv); b["Status"] != "FAILED" || !strings.Contains(b["Reason"].(string), "did not finish within the function's timeout") {
		t.Errorf("timeout: %v", b)
	}
	if dl, _ := ctx.Deadline(); !time.Now().Before(dl) {
		t.Errorf("answered after the deadline (%v)", time.Since(start))
	}

	// Long reasons are cut to what CloudFormation takes.
	cr = &lambdaapp.CustomResource{Apply: func(context.Context) (migrate.Result, error) {
		return migrate.Result{}, errors.New(strings.Repeat("é", 5000))
	}}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Create", srv.URL, "")); err != nil {
		t.Fatal(err)
	}
	if r := lastResponse(t, srv)["Reason"].(string); len(r) > 2100 || !strings.HasSuffix(r, "…") {
		t.Errorf("reason of %d bytes", len(r))
	}
}

func TestCustomResourceRetriesTheResponse(t *testing.T) {
	t.Parallel()
	srv := lambdatest.NewCFNServer(t)
	srv.Fail = []int{http.StatusServiceUnavailable, http.StatusInternalServerError}
	cr := &lambdaapp.CustomResource{Backoff: 10 * time.Millisecond, Apply: func(context.Context) (migrate.Result, error) {
		return migrate.Result{Current: "0004"}, nil
	}}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Create", srv.URL, "")); err != nil {
		t.Fatalf("after two 5xx: %v", err)
	}
	if srv.Hits() != 3 || lastResponse(t, srv)["Status"] != "SUCCESS" {
		t.Errorf("%d hits, response %v", srv.Hits(), srv.Responses())
	}

	// A refused URL (an expired pre-signed URL) is not retried, and the
	// error makes Lambda retry the invocation.
	srv = lambdatest.NewCFNServer(t)
	srv.Fail = []int{http.StatusForbidden}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Create", srv.URL, "")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("403: %v", err)
	}
	if srv.Hits() != 1 {
		t.Errorf("%d attempts after a 403", srv.Hits())
	}
	if _, err := cr.Handle(context.Background(), cfnEvent(t, "Create", "", "")); err == nil {
		t.Error("no ResponseURL: no error")
	}
}
