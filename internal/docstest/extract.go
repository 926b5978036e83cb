// Package docstest checks the code samples of README.md and docs/*.md:
// every yaml, json, sh and go fenced block is loaded, parsed, compiled or
// executed by the tests of this package (docs/README.md states the rules).
package docstest

import (
	"regexp"
	"strings"
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	File string // as given to Extract
	Line int    // 1-based line of the opening fence
	Lang string // the info string's first word, lower-cased ("" when none)
	Text string // the content, with the fence's indentation removed
	// Directive is the text of a `<!-- docstest: ... -->` comment on the
	// last non-blank line before the fence ("" when none), e.g.
	// "skip needs an AWS account" or "auth".
	Directive string
}

// Checked languages; every other info string (text, python, javascript,
// make, none…) marks a block that is shown, not run.
const (
	LangYAML = "yaml"
	LangJSON = "json"
	LangSh   = "sh"
	LangGo   = "go"
)

// Kind maps a block's language to the checked language it belongs to, or
// "" when the block is not checked.
func (b Block) Kind() string {
	switch b.Lang {
	case "yaml", "yml":
		return LangYAML
	case "json":
		return LangJSON
	case "sh", "bash", "shell":
		return LangSh
	case "go", "golang":
		return LangGo
	}
	return ""
}

// Skip reports whether a directive excludes the block, and why.
func (b Block) Skip() (reason string, skip bool) {
	if rest, ok := strings.CutPrefix(b.Directive, "skip"); ok {
		return strings.TrimSpace(rest), true
	}
	return "", false
}

var (
	fenceRe     = regexp.MustCompile("^( *)(```+|~~~+)[ \t]*([^`\\s]*)")
	directiveRe = regexp.MustCompile(`^<!--\s*docstest:\s*(.*?)\s*-->$`)
)

// Extract returns the fenced blocks of a Markdown document.
func Extract(file, src string) []Block {
	lines := strings.Split(src, "\n")
	var out []Block
	lastNonBlank := ""
	for i := 0; i < len(lines); i++ {
		m := fenceRe.FindStringSubmatch(lines[i])
		if m == nil {
			if t := strings.TrimSpace(lines[i]); t != "" {
				lastNonBlank = t
			}
			continue
		}
		indent, fence, lang := len(m[1]), m[2], strings.ToLower(m[3])
		b := Block{File: file, Line: i + 1, Lang: lang}
		if d := directiveRe.FindStringSubmatch(lastNonBlank); d != nil {
			b.Directive = d[1]
		}
		var body []string
		closed := false
		for i++; i < len(lines); i++ {
			l := lines[i]
			t := strings.TrimLeft(l, " ")
			if strings.HasPrefix(t, fence) && strings.TrimSpace(strings.TrimLeft(t, fence[:1])) == "" {
				closed = true
				break
			}
			// Remove the fence's indentation (at most that many spaces).
			n := 0
			for n < indent && n < len(l) && l[n] == ' ' {
				n++
			}
			body = append(body, l[n:])
		}
		_ = closed // an unclosed fence runs to the end of the document, as in CommonMark
		b.Text = strings.Join(body, "\n")
		if len(body) > 0 {
			b.Text += "\n"
		}
		out = append(out, b)
		lastNonBlank = ""
	}
	return out
}

// ShellPlan is what the test does with a sh block.
type ShellPlan struct {
	// Script is the block with the lines that must not run replaced by
	// ": skipped by docstest" (so line numbers stay).
	Script string
	// Skipped lists the logical lines left out.
	Skipped []string
	// SyntaxOnly is set when the block needs a deployed stack (it calls
	// aws or sam inside a command substitution): it is only parsed.
	SyntaxOnly bool
}

// Commands that are never run by the docs test: they start the server
// (the test runs its own), run the test suite or build (make), or deploy.
var skippedCommands = []*regexp.Regexp{
	regexp.MustCompile(`^make(\s|$)`),
	regexp.MustCompile(`^(sam|aws)(\s|$)`),
	regexp.MustCompile(`^(\S+/)?tasker\s+dev(\s|$)`),
	regexp.MustCompile(`^go\s+run\s+\./cmd/tasker\s+dev(\s|$)`),
	regexp.MustCompile(`^go\s+test(\s|$)`),
}

var (
	envAssignRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*=("[^"]*"|'[^']*'|\S*)\s+)+`)
	deployRe    = regexp.MustCompile("(\\$\\(|`)\\s*(aws|sam)\\s")
)

// PlanShell decides how a sh block runs: logical lines (continuations
// joined) whose command is in skippedCommands — after any leading
// VAR=value assignments — are replaced by no-ops.
func PlanShell(text string) ShellPlan {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var p ShellPlan
	out := make([]string, 0, len(lines))
	for i := 0; i < len(lines); i++ {
		start := i
		logical := lines[i]
		for strings.HasSuffix(lines[i], "\\") && i+1 < len(lines) {
			i++
			logical = strings.TrimSuffix(logical, "\\") + " " + strings.TrimSpace(lines[i])
		}
		cmd := strings.TrimSpace(logical)
		cmd = envAssignRe.ReplaceAllString(cmd, "")
		skip := false
		for _, re := range skippedCommands {
			if re.MatchString(cmd) {
				skip = true
				break
			}
		}
		if !skip {
			out = append(out, lines[start:i+1]...)
			continue
		}
		p.Skipped = append(p.Skipped, strings.TrimSpace(logical))
		for range lines[start : i+1] {
			out = append(out, ": skipped by docstest")
		}
	}
	p.Script = strings.Join(out, "\n") + "\n"
	p.SyntaxOnly = deployRe.MatchString(p.Script)
	return p
}
