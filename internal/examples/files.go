package examples

import (
	"context"
	"fmt"
	"strconv"

	"github.com/taskerhq/tasker/sdk"
)

// File batch context (templates/data_file_batch.yaml, a map step):
//
//	{"bucket": "tasker-data-exports", "prefix": "exports/2026-11-25/", "file_count": 12 (≤ 1000)}
//
// list_files lists synthetic export files; convert_file, run once per
// file by the map step, converts one; summarise_files adds up the
// instances' results, which the map step hands over as one ordered list.

// MaxListedFiles bounds data.list_files.
const MaxListedFiles = 1000

type exportFile struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

type convertedFile struct {
	Key    string `json:"key"`
	Output string `json:"output"`
	Rows   int    `json:"rows"`
}

func listFiles(_ context.Context, in sdk.Input) (any, error) {
	d, err := contextDoc(in)
	if err != nil {
		return nil, err
	}
	bucket, prefix := d.str("bucket"), d.str("prefix")
	if bucket == "" {
		return nil, permanent("invalid_input", "context.bucket is required")
	}
	n := d.integer(10, "file_count")
	if n < 0 || n > MaxListedFiles {
		return nil, permanent("invalid_input", "file_count %d is outside 0-%d", n, MaxListedFiles)
	}
	seed := in.TaskID().String() + bucket + prefix
	files := make([]exportFile, n)
	for i := range files {
		files[i] = exportFile{Key: fmt.Sprintf("%spart-%04d.csv", prefix, i),
			Bytes: 1000 + 100*hashInt(1000, seed, strconv.Itoa(i))}
	}
	return map[string]any{"bucket": bucket, "files": files}, nil
}

func convertFile(_ context.Context, in sdk.Input) (any, error) {
	var f exportFile
	_, ok, err := in.MapItem(&f)
	if err != nil {
		return nil, permanent("invalid_input", "%v", err)
	}
	if !ok || f.Key == "" {
		return nil, permanent("invalid_input", "data.convert_file runs as a map instance over files with a key")
	}
	return convertedFile{Key: f.Key, Output: f.Key + ".parquet", Rows: f.Bytes / 100}, nil
}

func summariseFiles(_ context.Context, in sdk.Input) (any, error) {
	var converted []convertedFile
	for name := range in.Results() {
		if err := in.Result(name, &converted); err == nil && len(converted) > 0 {
			break
		}
	}
	rows := 0
	for _, c := range converted {
		rows += c.Rows
	}
	return map[string]any{"files": len(converted), "rows": rows}, nil
}
