package bench

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// TestBenchFlags checks the flags are refused before anything starts.
func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--only", "1"},
		{"--only", "2,x"},
		{"--history", "0,-5"},
		{"--live", "ten"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("tasker bench %s: exit %d, want 2 (%s)", strings.Join(args, " "), code, errOut.String())
		}
	}
}

func TestSplitInts(t *testing.T) {
	if got := splitInts(" 0, 100000 ,1000000"); !slices.Equal(got, []int64{0, 100_000, 1_000_000}) {
		t.Errorf("splitInts = %v", got)
	}
	if got := splitInts(""); got != nil {
		t.Errorf("splitInts(\"\") = %v, want nil", got)
	}
}
