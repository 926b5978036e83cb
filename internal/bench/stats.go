package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// percentile returns the nearest-rank percentile p (0–100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 100:
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

// Row is one line of the results table.
type Row struct {
	ID         string // scenario number, e.g. "2"
	Name       string
	N          int
	P50, P99   time.Duration // zero: not applicable
	Throughput string
	Target     string
	Verdict    string
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printTable writes rows as a Markdown table.
func printTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| # | scenario | n | p50 | p99 | throughput | target | verdict |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---|")
	for _, r := range rows {
		n := "—"
		if r.N > 0 {
			n = fmt.Sprint(r.N)
		}
		thr := r.Throughput
		if thr == "" {
			thr = "—"
		}
		tgt := r.Target
		if tgt == "" {
			tgt = "—"
		}
		v := r.Verdict
		if v == "" {
			v = "info"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.ID, r.Name, n, ms(r.P50), ms(r.P99), thr, tgt, v)
	}
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func rate(v float64, unit string) string {
	return fmt.Sprintf("%s %s", thousands(v), unit)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
