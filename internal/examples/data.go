package examples

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/taskerhq/tasker/sdk"
)

// Data pipeline context:
//
//	{"source": "orders_db", "record_count": 100 (≤ 1000), "date": "2025-01-31"
//	 | "date_range": {"start_date", "end_date"}, "notification_channels": ["#data-team"],
//	 "simulate_extract_failures": N}
//
// extract produces deterministic synthetic order records, some of them
// dirty (no region, negative amount, duplicate id); the transforms clean,
// enrich and aggregate them; validate checks the aggregate; load and
// notify report what would be written and to whom.

// MaxExtractRecords bounds data.extract so results stay well under the
// step result size limit.
const MaxExtractRecords = 1000

type record struct {
	ID         int     `json:"id"`
	CustomerID string  `json:"customer_id"`
	Region     string  `json:"region"`
	Amount     float64 `json:"amount"`
	OrderDate  string  `json:"order_date"`
	Segment    string  `json:"segment,omitempty"`
	RegionName string  `json:"region_name,omitempty"`
}

var regions = []string{"north", "south", "east", "west"}

var regionNames = map[string]string{"north": "Northern", "south": "Southern", "east": "Eastern", "west": "Western"}

func extract(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	if err := simulatedFailure(in, d, "simulate_extract_failures", "source_unavailable", "source database unavailable"); err != nil {
		return nil, err
	}
	source := d.str("source", "source_system")
	if source == "" {
		source = in.ConfigString("source", "orders_db")
	}
	n := d.integer(100, "record_count", "limit")
	if n < 0 || n > MaxExtractRecords {
		return nil, permanent("invalid_input", "record_count %d is outside 0-%d", n, MaxExtractRecords)
	}
	day := d.str("date", "date_range.start_date")
	if day == "" {
		day = time.Now().UTC().Format("2006-01-02")
	}
	if _, err := time.Parse("2006-01-02", day); err != nil {
		return nil, permanent("invalid_input", "date %q is not YYYY-MM-DD", day)
	}
	seed := in.TaskID().String() + source
	recs := make([]record, 0, n)
	for i := range n {
		if i%100 == 0 {
			if err := ctxCheck(ctx); err != nil {
				return nil, err
			}
		}
		si := strconv.Itoa(i)
		r := record{
			ID:         i + 1,
			CustomerID: fmt.Sprintf("cust_%03d", hashInt(50, seed, "customer", si)),
			Region:     regions[hashInt(len(regions), seed, "region", si)],
			Amount:     dollars(int64(500 + hashInt(99500, seed, "amount", si))),
			OrderDate:  day,
		}
		switch {
		case i%17 == 16:
			r.Region = ""
		case i%23 == 22:
			r.Amount = -r.Amount
		case i%31 == 30:
			r.ID = i // duplicates the previous record's id
		}
		recs = append(recs, r)
	}
	return map[string]any{
		"source":       source,
		"date":         day,
		"record_count": len(recs),
		"records":      recs,
		"extracted_at": now(),
	}, nil
}

// recordsFrom returns the records of the first parent result holding the
// marker key, in order of preference.
func recordsFrom(in sdk.Input, markers ...string) ([]record, string, error) {
	for _, m := range markers {
		if p, ok := parentWith(in, "records", m); ok {
			var recs []record
			if err := remarshal(p["records"], &recs); err != nil {
				return nil, "", permanent("invalid_input", "parent records: %v", err)
			}
			return recs, m, nil
		}
	}
	return nil, "", permanent("missing_input", "no parent result of step %q carries records", in.Step())
}

func transformClean(ctx context.Context, in sdk.Input) (any, error) {
	recs, _, err := recordsFrom(in, "extracted_at", "records")
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	dropped := map[string]int{"missing_region": 0, "negative_amount": 0, "duplicate_id": 0}
	clean := make([]record, 0, len(recs))
	for _, r := range recs {
		switch {
		case r.Region == "":
			dropped["missing_region"]++
		case r.Amount < 0:
			dropped["negative_amount"]++
		case seen[r.ID]:
			dropped["duplicate_id"]++
		default:
			seen[r.ID] = true
			clean = append(clean, r)
		}
	}
	return map[string]any{
		"records":      clean,
		"input_count":  len(recs),
		"output_count": len(clean),
		"dropped":      dropped,
	}, nil
}

func segmentOf(amount float64) string {
	switch {
	case amount >= 500:
		return "premium"
	case amount >= 100:
		return "standard"
	default:
		return "basic"
	}
}

func transformEnrich(ctx context.Context, in sdk.Input) (any, error) {
	recs, from, err := recordsFrom(in, "dropped", "extracted_at", "records")
	if err != nil {
		return nil, err
	}
	for i := range recs {
		recs[i].Segment = segmentOf(recs[i].Amount)
		recs[i].RegionName = regionNames[recs[i].Region]
		if recs[i].RegionName == "" {
			recs[i].RegionName = "Unknown"
		}
	}
	return map[string]any{
		"records":        recs,
		"enriched_count": len(recs),
		"enriched_with":  []string{"segment", "region_name"},
		"cleaned":        from == "dropped",
	}, nil
}

type regionStats struct {
	Count       int     `json:"count"`
	TotalAmount float64 `json:"total_amount"`
	AvgAmount   float64 `json:"avg_amount"`
}

func transformAggregate(ctx context.Context, in sdk.Input) (any, error) {
	// Prefer enriched clean records; when enrichment ran on raw records
	// beside the cleaning step, aggregate the clean ones instead.
	markers := []string{"enriched_count", "dropped", "extracted_at", "records"}
	if e, ok := parentWith(in, "records", "enriched_count"); ok && e["cleaned"] != true {
		if _, ok := parentWith(in, "records", "dropped"); ok {
			markers = []string{"dropped"}
		}
	}
	recs, from, err := recordsFrom(in, markers...)
	if err != nil {
		return nil, err
	}
	byRegion := map[string]*regionStats{}
	bySegment := map[string]int{}
	var total int64
	for _, r := range recs {
		key := r.Region
		if key == "" {
			key = "unknown"
		}
		s := byRegion[key]
		if s == nil {
			s = &regionStats{}
			byRegion[key] = s
		}
		c := cents(r.Amount)
		s.Count++
		s.TotalAmount = dollars(cents(s.TotalAmount) + c)
		total += c
		seg := r.Segment
		if seg == "" {
			seg = segmentOf(r.Amount)
		}
		bySegment[seg]++
	}
	for _, s := range byRegion {
		s.AvgAmount = math.Round(s.TotalAmount/float64(s.Count)*100) / 100
	}
	cleaned := from == "dropped"
	if from == "enriched_count" {
		e, _ := parentWith(in, "records", "enriched_count")
		cleaned = e["cleaned"] == true
	}
	return map[string]any{
		"by_region":     byRegion,
		"by_segment":    bySegment,
		"total_records": len(recs),
		"total_amount":  dollars(total),
		"cleaned_input": cleaned,
	}, nil
}

func validateData(ctx context.Context, in sdk.Input) (any, error) {
	agg, ok := parentWith(in, "by_region", "total_records")
	if !ok {
		return nil, permanent("missing_input", "no parent result of step %q carries an aggregate (by_region)", in.Step())
	}
	var a struct {
		ByRegion     map[string]regionStats `json:"by_region"`
		TotalRecords int                    `json:"total_records"`
		TotalAmount  float64                `json:"total_amount"`
		Cleaned      bool                   `json:"cleaned_input"`
	}
	if err := remarshal(agg, &a); err != nil {
		return nil, permanent("invalid_input", "aggregate: %v", err)
	}
	minRecords := int(configFloat(in, "min_records", 1))
	count, sum := 0, int64(0)
	for _, s := range a.ByRegion {
		count += s.Count
		sum += cents(s.TotalAmount)
	}
	_, unknown := a.ByRegion["unknown"]
	checks := []map[string]any{
		{"name": "min_records", "passed": a.TotalRecords >= minRecords, "detail": fmt.Sprintf("%d records, minimum %d", a.TotalRecords, minRecords)},
		{"name": "counts_reconcile", "passed": count == a.TotalRecords},
		{"name": "amounts_reconcile", "passed": sum == cents(a.TotalAmount)},
		{"name": "no_unknown_region", "passed": !unknown},
	}
	var failed []string
	for _, c := range checks {
		if !c["passed"].(bool) {
			failed = append(failed, c["name"].(string))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return nil, permanent("data_quality", "data quality checks failed: %v", failed)
	}
	return map[string]any{"valid": true, "checks": checks, "total_records": a.TotalRecords, "validated_at": now()}, nil
}

func load(ctx context.Context, in sdk.Input) (any, error) {
	agg, ok := parentWith(in, "by_region")
	if !ok {
		// Loading after validate: the aggregate may be a grandparent.
		v, vok := parentWith(in, "valid", "total_records")
		if !vok {
			return nil, permanent("missing_input", "no parent result of step %q carries an aggregate or a validation", in.Step())
		}
		agg = doc{"total_records": v["total_records"], "by_region": map[string]any{}}
	}
	rows := 0
	if m, ok := agg["by_region"].(map[string]any); ok {
		rows = len(m)
	}
	return map[string]any{
		"load_id":        stableID("load_", in, "load"),
		"table":          in.ConfigString("table", "analytics.daily_order_summary"),
		"rows_written":   rows,
		"source_records": agg["total_records"],
		"loaded_at":      now(),
	}, nil
}

func notify(ctx context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	var channels []string
	for _, c := range d.list("notification_channels") {
		if s, ok := c.(string); ok && s != "" {
			channels = append(channels, s)
		}
	}
	if len(channels) == 0 {
		channels = []string{in.ConfigString("channel", "#data-team")}
	}
	msg := "Pipeline finished"
	if l, ok := parentWith(in, "load_id", "rows_written"); ok {
		msg = fmt.Sprintf("Loaded %v rows into %v (load %v)", l["rows_written"], l["table"], l["load_id"])
	}
	return map[string]any{
		"channels":    channels,
		"message":     msg,
		"notified_at": now(),
	}, nil
}
