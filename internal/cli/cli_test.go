package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := fs.Bool("b", false, "")
	s := fs.String("s", "", "")
	pos, _, ok := ParseInterleaved(fs, []string{"one", "-b", "two", "--s", "v", "--", "-three", "four"})
	if !ok || !*b || *s != "v" || strings.Join(pos, " ") != "one two -three four" {
		t.Errorf("pos %q b %v s %q ok %v", pos, *b, *s, ok)
	}
}
