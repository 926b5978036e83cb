package testenv

import "testing"

func TestCorpusRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		exists bool
		ci     string
		want   corpusAction
	}{
		{true, "", useCorpus},
		{true, "true", useCorpus},
		{false, "", skipCorpusTest},
		{false, "false", skipCorpusTest},
		{false, "0", skipCorpusTest},
		{false, "yes", skipCorpusTest}, // not a boolean: not CI
		{false, "true", failCorpusTest},
		{false, "1", failCorpusTest},
	} {
		if got := corpusRule(tc.exists, tc.ci); got != tc.want {
			t.Errorf("corpusRule(%v, %q) = %d, want %d", tc.exists, tc.ci, got, tc.want)
		}
	}
}
