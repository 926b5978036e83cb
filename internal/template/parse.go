package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Fields with no meaning in this engine that Rails Tasker templates carry.
// They are accepted and listed in Template.Ignored.
var ignoredTopFields = map[string]bool{
	"task_handler_class":       true,
	"module_namespace":         true,
	"class_name":               true,
	"concurrent":               true,
	"named_steps":              true,
	"default_dependent_system": true,
	"retry_strategies":         true,
	"monitoring":               true,
	"handler_config":           true,
	"custom_events":            true,
}

var ignoredStepFields = map[string]bool{
	"custom_events":    true,
	"dependent_system": true,
}

var knownTopFields = []string{
	"namespace", "namespace_name", "name", "version", "description",
	"context_schema", "schema", "steps", "step_templates", "triggers", "environments",
}

var knownStepFields = []string{
	"name", "description", "handler", "handler_class",
	"depends_on", "depends_on_step", "depends_on_steps", "config", "handler_config",
	"retry", "default_retryable", "default_retry_limit",
	"timeout_seconds", "concurrency", "skippable",
}

var knownRetryFields = []string{"max_attempts", "backoff_base_seconds", "max_backoff_seconds", "jitter"}

var knownTriggerFields = []string{"type", "bucket", "prefix", "suffix", "source", "detail_type", "detail", "context"}

// Parse reads one template from YAML. source names it in errors and becomes
// Template.Source. Every problem found is reported, as Errors.
func Parse(source string, data []byte, opts Options) (*Template, error) {
	p := &parser{file: source, opts: opts, env: opts.env()}
	t := p.parse(data)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return t, nil
}

// LoadFile reads and parses one template file.
func LoadFile(path string, opts Options) (*Template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	defer f.Close()
	// Read one byte past the limit so an oversized file is refused by Parse
	// without first being read whole into memory.
	data, err := io.ReadAll(io.LimitReader(f, int64(opts.Limits.withDefaults().MaxFileBytes)+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	return Parse(path, data, opts)
}

type parser struct {
	file string
	opts Options
	env  string
	errs Errors
}

// budget reports a template beyond its loading limits; the error wraps
// ErrBudget.
func (p *parser) budget(line int, msg string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: msg, Err: ErrBudget})
}

func (p *parser) errf(line int, step, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Step: step, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) dupKey(step, prefix string) func(string, int) {
	return func(key string, line int) {
		p.errf(line, step, prefix+key, "given more than once")
	}
}

var yamlErrRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) yamlError(err error) {
	msg := err.Error()
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if m := yamlErrRe.FindStringSubmatch(l); m != nil {
			line, _ := strconv.Atoi(m[1])
			p.errf(line, "", "", "invalid YAML: %s", m[2])
			continue
		}
		if l != "" && l != "yaml: unmarshal errors:" {
			p.errf(0, "", "", "invalid YAML: %s", strings.TrimPrefix(l, "yaml: "))
		}
	}
}

// unknownField reports a field that is not part of the format, suggesting
// the closest known one.
func (p *parser) unknownField(line int, step, field, key string, known []string) {
	msg := "unknown field"
	if s := suggest(key, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	p.errf(line, step, field, "%s", msg)
}

// spelled remembers which spelling of a canonical field a step used.
type spelled struct {
	key  string
	line int
}

type depRef struct {
	name  string
	field string
	line  int
}

// stepMeta is what the parser knows about a step beyond Step itself.
type stepMeta struct {
	label  string // name, or "#N" when the step has none
	line   int
	fields map[string]spelled // canonical field -> spelling used
	deps   []depRef
	config map[string]any
}

func (m *stepMeta) field(canon string) string {
	if f, ok := m.fields[canon]; ok {
		return f.key
	}
	return canon
}

func (m *stepMeta) fieldLine(canon string) int {
	if f, ok := m.fields[canon]; ok {
		return f.line
	}
	return m.line
}

func (p *parser) parse(data []byte) *Template {
	lim := p.opts.Limits.withDefaults()
	if len(data) > lim.MaxFileBytes {
		p.budget(0, fmt.Sprintf("file larger than the loading budget of %d bytes (MaxFileBytes)", lim.MaxFileBytes))
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errf(0, "", "", "empty file: no template")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errf(extra.Line, "", "", "more than one YAML document: put one template per file")
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
	}
	// Measure before anything expands an alias: past this point every walk
	// of the document is bounded by lim.
	var be *budgetError
	if err := measure(&doc, lim); errors.As(err, &be) {
		p.budget(be.line, be.msg)
		return nil
	}
	root := resolve(&doc)
	if root == nil || root.Kind != yaml.MappingNode {
		p.errf(doc.Line, "", "", "a template must be a mapping, got %s", describe(root))
		return nil
	}

	t := &Template{Source: p.file}
	var nsKV, nameKV, versionKV, descKV, schemaKV, stepsKV, triggersKV, envKV *pair
	set := func(slot **pair, kv pair) {
		if *slot != nil {
			p.errf(kv.k.Line, "", kv.key, "conflicts with %q (two spellings of one field; keep one)", (*slot).key)
			return
		}
		*slot = &kv
	}
	for _, kv := range mapPairs(root, p.dupKey("", "")) {
		if ignoredTopFields[kv.key] {
			t.Ignored = append(t.Ignored, kv.key)
			continue
		}
		if strings.HasPrefix(kv.key, "x-") {
			continue // extension field, e.g. a home for YAML anchors
		}
		if isNull(kv.v) {
			if !slices.Contains(knownTopFields, kv.key) {
				p.unknownField(kv.k.Line, "", kv.key, kv.key, knownTopFields)
			}
			continue
		}
		switch kv.key {
		case "namespace", "namespace_name":
			set(&nsKV, kv)
		case "name":
			set(&nameKV, kv)
		case "version":
			set(&versionKV, kv)
		case "description":
			set(&descKV, kv)
		case "context_schema", "schema":
			set(&schemaKV, kv)
		case "steps", "step_templates":
			set(&stepsKV, kv)
		case "triggers":
			set(&triggersKV, kv)
		case "environments":
			set(&envKV, kv)
		default:
			p.unknownField(kv.k.Line, "", kv.key, kv.key, knownTopFields)
		}
	}

	p.identity(t, nsKV, nameKV, versionKV)
	if descKV != nil {
		if s, bad := scalarString(descKV.v); bad != "" {
			p.errf(descKV.v.Line, "", descKV.key, "%s", bad)
		} else {
			t.Description = s
		}
	}

	metas := p.steps(t, stepsKV)
	index := map[string]int{}
	for i, s := range t.Steps {
		if _, dup := index[s.Name]; !dup && s.Name != "" {
			index[s.Name] = i
		}
	}
	if envKV != nil {
		p.environments(t, envKV, index, metas)
	}
	for i := range t.Steps {
		p.finishConfig(&t.Steps[i], metas[i])
	}
	if schemaKV != nil {
		p.contextSchema(t, schemaKV)
	}
	if triggersKV != nil {
		p.triggers(t, triggersKV)
	}
	p.graph(t, metas)
	p.handlers(t, metas)

	if len(p.errs) > 0 {
		return nil
	}
	t.index = index
	t.levels, _ = computeLevels(t.Steps)
	return t
}

// identity sets namespace, name and version, applying the Rails rules:
// a missing namespace is "default", a missing version "0.1.0", and a name
// "ns/name" keeps the part after the slash (the part before becomes the
// namespace when none is given).
func (p *parser) identity(t *Template, nsKV, nameKV, versionKV *pair) {
	nsGiven := false
	if nsKV != nil {
		s, bad := scalarString(nsKV.v)
		if bad != "" {
			p.errf(nsKV.v.Line, "", nsKV.key, "%s", bad)
		} else {
			t.Namespace, nsGiven = s, true
		}
	}
	if nameKV == nil {
		p.errf(0, "", "name", "the template has no name")
	} else if s, bad := scalarString(nameKV.v); bad != "" {
		p.errf(nameKV.v.Line, "", "name", "%s", bad)
	} else {
		if before, after, ok := strings.Cut(s, "/"); ok {
			s = after
			if !nsGiven {
				t.Namespace, nsGiven = before, true
				nsKV = nameKV
			}
		}
		t.Name = s
		if !ValidName(s) {
			p.errf(nameKV.v.Line, "", "name", "invalid name %q: %s", s, nameRule)
		}
	}
	if !nsGiven {
		t.Namespace = DefaultNamespace
	} else if !ValidName(t.Namespace) {
		p.errf(nsKV.v.Line, "", nsKV.key, "invalid namespace %q: %s", t.Namespace, nameRule)
	}
	t.Version = DefaultVersion
	if versionKV != nil {
		s, bad := scalarString(versionKV.v)
		switch {
		case bad != "":
			p.errf(versionKV.v.Line, "", "version", "%s", bad)
		case !ValidVersion(s):
			p.errf(versionKV.v.Line, "", "version", "invalid version %q: want MAJOR.MINOR.PATCH with an optional pre-release, e.g. \"1.2.0\" or \"2.0.0-rc.1\"", s)
		default:
			t.Version = s
		}
	}
}

const nameRule = "use letters, digits, '_', '.' and '-' (no '/', no '..', not starting with '.' or '-', at most 128 characters)"

func (p *parser) steps(t *Template, kv *pair) []*stepMeta {
	if kv == nil {
		p.errf(0, "", "steps", "the template has no steps")
		return nil
	}
	n := resolve(kv.v)
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "", kv.key, "must be a list of steps, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errf(n.Line, "", kv.key, "the template has no steps")
		return nil
	}
	metas := make([]*stepMeta, 0, len(n.Content))
	for i, sn := range n.Content {
		s, m := p.step(t, kv.key, i, sn)
		t.Steps = append(t.Steps, s)
		metas = append(metas, m)
	}
	return metas
}

func (p *parser) step(t *Template, listKey string, i int, n *yaml.Node) (Step, *stepMeta) {
	s := Step{Retry: DefaultRetry(), TimeoutSeconds: DefaultTimeoutSeconds, DependsOn: []string{}}
	n = resolve(n)
	m := &stepMeta{label: fmt.Sprintf("#%d", i+1), line: n.Line, fields: map[string]spelled{}}
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, m.label, listKey, "each step must be a mapping, got %s", describe(n))
		return s, m
	}
	pairs := mapPairs(n, func(key string, line int) { p.errf(line, m.label, key, "given more than once") })
	nameFound := false
	for _, kv := range pairs {
		if kv.key != "name" {
			continue
		}
		nameFound = true
		if name, bad := scalarString(kv.v); bad != "" || isNull(kv.v) {
			p.errf(kv.v.Line, m.label, "name", "step name must be a string, got %s", describe(kv.v))
		} else if !ValidName(name) {
			p.errf(kv.v.Line, m.label, "name", "invalid step name %q: %s", name, nameRule)
			s.Name = name
		} else {
			s.Name, m.label = name, name
		}
	}
	if !nameFound {
		p.errf(n.Line, m.label, "name", "the step has no name")
	}
	step := m.label
	claim := func(canon string, kv pair) bool {
		if prev, ok := m.fields[canon]; ok {
			p.errf(kv.k.Line, step, kv.key, "conflicts with %q (two spellings of one field; keep one)", prev.key)
			return false
		}
		m.fields[canon] = spelled{kv.key, kv.k.Line}
		return true
	}
	var (
		maxAttempts        *int
		maxAttemptsField   string
		retryLimit         *int
		retryLimitLine     int
		retryable          *bool
		retryableLine      int
		backoffSet, maxSet bool
	)
	for _, kv := range pairs {
		if ignoredStepFields[kv.key] {
			t.Ignored = append(t.Ignored, "steps."+step+"."+kv.key)
			continue
		}
		if kv.key == "name" {
			continue
		}
		if isNull(kv.v) {
			if !slices.Contains(knownStepFields, kv.key) {
				p.unknownField(kv.k.Line, step, kv.key, kv.key, knownStepFields)
			}
			continue
		}
		line := kv.v.Line
		switch kv.key {
		case "description":
			if v, bad := scalarString(kv.v); bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
			} else {
				s.Description = v
			}
		case "handler", "handler_class":
			if !claim("handler", kv) {
				continue
			}
			if v, bad := scalarString(kv.v); bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
			} else {
				s.Handler = strings.TrimSpace(v)
			}
		case "depends_on", "depends_on_step", "depends_on_steps":
			if _, ok := m.fields["depends_on"]; !ok {
				m.fields["depends_on"] = spelled{kv.key, kv.k.Line}
			}
			list, bad := stringList(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			// The Rails engine takes the union of depends_on_step and depends_on_steps.
			for _, d := range list {
				d = strings.TrimSpace(d)
				if !slices.Contains(s.DependsOn, d) {
					s.DependsOn = append(s.DependsOn, d)
					m.deps = append(m.deps, depRef{name: d, field: kv.key, line: line})
				}
			}
		case "config", "handler_config":
			if !claim("config", kv) {
				continue
			}
			if resolve(kv.v).Kind != yaml.MappingNode {
				p.errf(line, step, kv.key, "must be a mapping, got %s", describe(kv.v))
				continue
			}
			v, err := toJSON(kv.v, 0)
			if err != nil {
				p.errf(line, step, kv.key, "%v", err)
				continue
			}
			m.config = v.(map[string]any)
		case "retry":
			rn := resolve(kv.v)
			if rn.Kind != yaml.MappingNode {
				p.errf(line, step, "retry", "must be a mapping with %s, got %s", strings.Join(knownRetryFields, ", "), describe(rn))
				continue
			}
			for _, rkv := range mapPairs(rn, p.dupKey(step, "retry.")) {
				field := "retry." + rkv.key
				if isNull(rkv.v) {
					continue
				}
				rl := rkv.v.Line
				switch rkv.key {
				case "max_attempts":
					v, bad := scalarInt(rkv.v)
					if bad != "" {
						p.errf(rl, step, field, "%s", bad)
						continue
					}
					maxAttempts, maxAttemptsField = &v, field
					m.fields["max_attempts"] = spelled{field, rl}
				case "backoff_base_seconds":
					v, bad := scalarFloat(rkv.v)
					if bad != "" {
						p.errf(rl, step, field, "%s", bad)
						continue
					}
					if v <= 0 {
						p.errf(rl, step, field, "must be greater than 0, got %v", v)
					}
					s.Retry.BackoffBase, backoffSet = seconds(v), true
					m.fields["backoff_base"] = spelled{field, rl}
				case "max_backoff_seconds":
					v, bad := scalarFloat(rkv.v)
					if bad != "" {
						p.errf(rl, step, field, "%s", bad)
						continue
					}
					if v <= 0 {
						p.errf(rl, step, field, "must be greater than 0, got %v", v)
					}
					s.Retry.MaxBackoff, maxSet = seconds(v), true
					m.fields["max_backoff"] = spelled{field, rl}
				case "jitter":
					v, bad := scalarFloat(rkv.v)
					if bad != "" {
						p.errf(rl, step, field, "%s", bad)
						continue
					}
					if v < 0 || v > 1 {
						p.errf(rl, step, field, "must be between 0 and 1, got %v", v)
					}
					s.Retry.Jitter = v
				default:
					p.unknownField(rkv.k.Line, step, field, rkv.key, knownRetryFields)
				}
			}
		case "default_retryable":
			v, bad := scalarBool(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			retryable, retryableLine = &v, line
		case "default_retry_limit":
			v, bad := scalarInt(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			retryLimit, retryLimitLine = &v, line
		case "timeout_seconds":
			v, bad := scalarInt(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			if v < 1 || v > MaxTimeoutSeconds {
				p.errf(line, step, kv.key, "must be between 1 and %d, got %d", MaxTimeoutSeconds, v)
			}
			s.TimeoutSeconds = v
		case "concurrency":
			v, bad := scalarInt(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			if v < 0 {
				p.errf(line, step, kv.key, "must be 0 (unlimited) or more, got %d", v)
			}
			s.Concurrency = v
		case "skippable":
			v, bad := scalarBool(kv.v)
			if bad != "" {
				p.errf(line, step, kv.key, "%s", bad)
				continue
			}
			s.Skippable = v
		default:
			p.unknownField(kv.k.Line, step, kv.key, kv.key, knownStepFields)
		}
	}

	// Retry: native retry.max_attempts, or Rails default_retry_limit
	// (0 meaning "no retries"), and default_retryable: false => one attempt.
	if retryLimit != nil {
		if maxAttempts != nil {
			p.errf(retryLimitLine, step, "default_retry_limit", "conflicts with %q (keep one)", maxAttemptsField)
		} else {
			v := *retryLimit
			if v == 0 {
				v = 1
			}
			maxAttempts, maxAttemptsField = &v, "default_retry_limit"
			m.fields["max_attempts"] = spelled{"default_retry_limit", retryLimitLine}
		}
	}
	if maxAttempts != nil {
		if *maxAttempts < 1 || *maxAttempts > MaxMaxAttempts {
			p.errf(m.fieldLine("max_attempts"), step, maxAttemptsField, "must be between 1 and %d, got %d", MaxMaxAttempts, *maxAttempts)
		}
		s.Retry.MaxAttempts = *maxAttempts
	}
	if retryable != nil && !*retryable {
		if maxAttempts != nil && maxAttemptsField != "default_retry_limit" && *maxAttempts > 1 {
			p.errf(retryableLine, step, "default_retryable", "is false but %s is %d (keep one)", maxAttemptsField, *maxAttempts)
		}
		s.Retry.MaxAttempts = 1
	}
	if (backoffSet || maxSet) && s.Retry.BackoffBase > 0 && s.Retry.MaxBackoff > 0 && s.Retry.MaxBackoff < s.Retry.BackoffBase {
		f := "retry.max_backoff_seconds"
		if !maxSet {
			f = "retry.backoff_base_seconds"
		}
		p.errf(m.fieldLine("max_backoff"), step, f, "max_backoff_seconds (%v) must not be less than backoff_base_seconds (%v)",
			s.Retry.MaxBackoff.Seconds(), s.Retry.BackoffBase.Seconds())
	}
	return s, m
}

// environments validates every `environments:` entry and merges the
// handler_config overrides of the selected environment over the base ones.
func (p *parser) environments(t *Template, kv *pair, index map[string]int, metas []*stepMeta) {
	n := resolve(kv.v)
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, "", "environments", "must be a mapping of environment name to overrides, got %s", describe(n))
		return
	}
	for _, ekv := range mapPairs(n, p.dupKey("", "environments.")) {
		env := ekv.key
		prefix := "environments." + env
		applied := env == p.env
		if !applied {
			t.Ignored = append(t.Ignored, prefix)
		}
		if isNull(ekv.v) {
			continue
		}
		en := resolve(ekv.v)
		if en.Kind != yaml.MappingNode {
			p.errf(en.Line, "", prefix, "must be a mapping with step_templates, got %s", describe(en))
			continue
		}
		for _, skv := range mapPairs(en, p.dupKey("", prefix+".")) {
			field := prefix + "." + skv.key
			if skv.key != "step_templates" && skv.key != "steps" {
				p.unknownField(skv.k.Line, "", field, skv.key, []string{"step_templates", "steps"})
				continue
			}
			if isNull(skv.v) {
				continue
			}
			sn := resolve(skv.v)
			if sn.Kind != yaml.SequenceNode {
				p.errf(sn.Line, "", field, "must be a list of step overrides, got %s", describe(sn))
				continue
			}
			for i, item := range sn.Content {
				item = resolve(item)
				itemField := fmt.Sprintf("%s[%d]", field, i)
				if item.Kind != yaml.MappingNode {
					p.errf(item.Line, "", itemField, "must be a mapping with name and handler_config, got %s", describe(item))
					continue
				}
				var name, cfgKey string
				var cfg map[string]any
				for _, ikv := range mapPairs(item, p.dupKey("", itemField+".")) {
					switch ikv.key {
					case "name":
						v, bad := scalarString(ikv.v)
						if bad != "" {
							p.errf(ikv.v.Line, "", itemField+".name", "%s", bad)
						}
						name = v
					case "handler_config", "config":
						if isNull(ikv.v) {
							continue
						}
						if resolve(ikv.v).Kind != yaml.MappingNode {
							p.errf(ikv.v.Line, "", itemField+"."+ikv.key, "must be a mapping, got %s", describe(ikv.v))
							continue
						}
						v, err := toJSON(ikv.v, 0)
						if err != nil {
							p.errf(ikv.v.Line, "", itemField+"."+ikv.key, "%v", err)
							continue
						}
						cfg, cfgKey = v.(map[string]any), ikv.key
					default:
						p.unknownField(ikv.k.Line, name, itemField+"."+ikv.key, ikv.key, []string{"name", "handler_config", "config"})
					}
				}
				if name == "" {
					p.errf(item.Line, "", itemField+".name", "a step override needs the name of the step it overrides")
					continue
				}
				idx, ok := index[name]
				if !ok {
					p.errf(item.Line, name, itemField+".name", "override for unknown step %q", name)
					continue
				}
				switch {
				case applied && cfg != nil:
					metas[idx].config = deepMerge(metas[idx].config, cfg)
				case cfg != nil && t.Steps[idx].Handler == HandlerHTTP:
					// finishConfig checks the selected environment; an
					// unselected one must not hide a bad URL until deploy.
					for _, pr := range httpConfigProblems(cfg) {
						p.errf(item.Line, name, itemField+"."+cfgKey+"."+pr.field, "%s", pr.msg)
					}
				}
			}
		}
	}
}

// deepMerge merges over into base: maps merge recursively, anything else in
// over replaces what base has. base is not modified.
func deepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = deepMerge(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

func (p *parser) finishConfig(s *Step, m *stepMeta) {
	if m.config == nil {
		s.Config = json.RawMessage("{}")
	} else {
		b, err := json.Marshal(m.config)
		if err != nil {
			p.errf(m.fieldLine("config"), m.label, m.field("config"), "cannot be represented as JSON: %v", err)
			s.Config = json.RawMessage("{}")
			return
		}
		s.Config = b
	}
	if s.Handler == HandlerHTTP {
		u, _ := m.config["url"].(string)
		if strings.TrimSpace(u) == "" {
			p.errf(m.fieldLine("config"), m.label, m.field("config"), "handler %s needs config.url", HandlerHTTP)
		}
		for _, pr := range httpConfigProblems(m.config) {
			p.errf(m.fieldLine("config"), m.label, m.field("config")+"."+pr.field, "%s", pr.msg)
		}
	}
}

func (p *parser) contextSchema(t *Template, kv *pair) {
	n := resolve(kv.v)
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, "", kv.key, "must be a JSON Schema object, got %s", describe(n))
		return
	}
	v, err := toJSON(n, 0)
	if err != nil {
		p.errf(n.Line, "", kv.key, "%v", err)
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		p.errf(n.Line, "", kv.key, "cannot be represented as JSON: %v", err)
		return
	}
	sch, err := compileSchema(raw)
	if err != nil {
		p.errf(n.Line, "", kv.key, "invalid JSON Schema: %v", err)
		return
	}
	t.ContextSchema = raw
	t.schema = sch
}

func (p *parser) triggers(t *Template, kv *pair) {
	n := resolve(kv.v)
	if n.Kind != yaml.SequenceNode {
		p.errf(n.Line, "", "triggers", "must be a list of triggers, got %s", describe(n))
		return
	}
	for i, tn := range n.Content {
		tn = resolve(tn)
		prefix := fmt.Sprintf("triggers[%d]", i)
		if tn.Kind != yaml.MappingNode {
			p.errf(tn.Line, "", prefix, "each trigger must be a mapping, got %s", describe(tn))
			continue
		}
		var tr Trigger
		fieldLine := map[string]int{}
		for _, f := range mapPairs(tn, p.dupKey("", prefix+".")) {
			field := prefix + "." + f.key
			if isNull(f.v) {
				if !slices.Contains(knownTriggerFields, f.key) {
					p.unknownField(f.k.Line, "", field, f.key, knownTriggerFields)
				}
				continue
			}
			fieldLine[f.key] = f.v.Line
			str := func(dst *string) {
				v, bad := scalarString(f.v)
				if bad != "" {
					p.errf(f.v.Line, "", field, "%s", bad)
				}
				*dst = v
			}
			list := func(dst *[]string) {
				v, bad := stringList(f.v)
				if bad != "" {
					p.errf(f.v.Line, "", field, "%s", bad)
				}
				*dst = v
			}
			switch f.key {
			case "type":
				str(&tr.Type)
				tr.Type = strings.ToLower(tr.Type)
			case "bucket":
				str(&tr.Bucket)
			case "prefix":
				str(&tr.Prefix)
			case "suffix":
				str(&tr.Suffix)
			case "source":
				list(&tr.Source)
			case "detail_type":
				list(&tr.DetailType)
			case "detail":
				if resolve(f.v).Kind != yaml.MappingNode {
					p.errf(f.v.Line, "", field, "must be a mapping (an EventBridge pattern on the event's detail), got %s", describe(f.v))
					continue
				}
				v, err := toJSON(f.v, 0)
				if err != nil {
					p.errf(f.v.Line, "", field, "%v", err)
					continue
				}
				// Round-trip through JSON so numbers are float64, as in decoded events.
				b, err := json.Marshal(v)
				if err == nil {
					err = json.Unmarshal(b, &tr.Detail)
				}
				if err != nil {
					p.errf(f.v.Line, "", field, "%v", err)
				}
			case "context":
				cn := resolve(f.v)
				if cn.Kind != yaml.MappingNode {
					p.errf(cn.Line, "", field, "must map context fields to event paths like \"$.detail.order_id\", got %s", describe(cn))
					continue
				}
				tr.Context = map[string]string{}
				for _, c := range mapPairs(cn, p.dupKey("", field+".")) {
					cf := field + "." + c.key
					v, bad := scalarString(c.v)
					switch {
					case bad != "" || isNull(c.v):
						p.errf(c.v.Line, "", cf, "must be a path into the event like \"$.detail.order_id\", got %s", describe(c.v))
					case !strings.HasPrefix(v, "$"):
						p.errf(c.v.Line, "", cf, "event path %q must start with \"$\" (e.g. \"$.detail.order_id\", \"$.bucket\", \"$.key\")", v)
					case c.key == "":
						p.errf(c.k.Line, "", cf, "context field name must not be empty")
					default:
						tr.Context[c.key] = v
					}
				}
			default:
				p.unknownField(f.k.Line, "", field, f.key, knownTriggerFields)
			}
		}
		switch tr.Type {
		case "":
			p.errf(tn.Line, "", prefix+".type", "a trigger needs a type: %q or %q", TriggerS3, TriggerEventBridge)
		case TriggerS3:
			if tr.Bucket == "" {
				p.errf(tn.Line, "", prefix+".bucket", "an s3 trigger needs a bucket")
			}
			for _, f := range []string{"source", "detail_type", "detail"} {
				if l, ok := fieldLine[f]; ok {
					p.errf(l, "", prefix+"."+f, "only valid for eventbridge triggers")
				}
			}
		case TriggerEventBridge:
			if len(tr.Source) == 0 && len(tr.DetailType) == 0 {
				p.errf(tn.Line, "", prefix+".source", "an eventbridge trigger needs a source or a detail_type to match")
			}
			for _, f := range []string{"bucket", "prefix", "suffix"} {
				if l, ok := fieldLine[f]; ok {
					p.errf(l, "", prefix+"."+f, "only valid for s3 triggers")
				}
			}
		default:
			p.errf(fieldLine["type"], "", prefix+".type", "unknown trigger type %q: want %q or %q", tr.Type, TriggerS3, TriggerEventBridge)
		}
		t.Triggers = append(t.Triggers, tr)
	}
}

// graph checks step names and dependencies: duplicates, unknown steps,
// self-dependencies and cycles.
func (p *parser) graph(t *Template, metas []*stepMeta) {
	first := map[string]int{}
	for i, s := range t.Steps {
		if s.Name == "" {
			continue
		}
		if j, dup := first[s.Name]; dup {
			p.errf(metas[i].line, s.Name, "name", "duplicate step name (first defined at line %d)", metas[j].line)
			continue
		}
		first[s.Name] = i
	}
	adj := make([][]int, len(t.Steps))
	via := make([]map[int]depRef, len(t.Steps))
	for i := range t.Steps {
		m := metas[i]
		via[i] = map[int]depRef{}
		for _, d := range m.deps {
			j, ok := first[d.name]
			switch {
			case d.name == "":
				p.errf(d.line, m.label, d.field, "empty step name in dependencies")
			case d.name == t.Steps[i].Name:
				p.errf(d.line, m.label, d.field, "step depends on itself")
			case !ok:
				msg := fmt.Sprintf("unknown step %q", d.name)
				names := make([]string, 0, len(first))
				for n := range first {
					names = append(names, n)
				}
				if s := suggest(d.name, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				p.errf(d.line, m.label, d.field, "%s", msg)
			case j == i:
				// a duplicate of this step's own name: reported above
			default:
				adj[i] = append(adj[i], j)
				via[i][j] = d
			}
		}
	}
	// Cycles: depth-first search; report each distinct cycle once, on the
	// dependency that closes it in template order.
	state := make([]int8, len(t.Steps))
	var stack []int
	seen := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		state[i] = 1
		stack = append(stack, i)
		for _, j := range adj[i] {
			switch state[j] {
			case 0:
				visit(j)
			case 1:
				k := len(stack) - 1
				for stack[k] != j {
					k--
				}
				cyc := append([]int(nil), stack[k:]...)
				key := cycleKey(cyc)
				if seen[key] {
					continue
				}
				seen[key] = true
				names := make([]string, 0, len(cyc)+1)
				for _, c := range cyc {
					names = append(names, t.Steps[c].Name)
				}
				names = append(names, t.Steps[j].Name)
				next := j
				if len(cyc) > 1 {
					next = cyc[1]
				}
				d := via[j][next]
				p.errf(d.line, t.Steps[j].Name, d.field, "dependency cycle: %s", strings.Join(names, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = 2
	}
	for i := range t.Steps {
		if state[i] == 0 {
			visit(i)
		}
	}
}

// cycleKey identifies a cycle regardless of where it was entered.
func cycleKey(cyc []int) string {
	lo := 0
	for i, c := range cyc {
		if c < cyc[lo] {
			lo = i
		}
	}
	var b strings.Builder
	for i := range cyc {
		fmt.Fprintf(&b, "%d,", cyc[(lo+i)%len(cyc)])
	}
	return b.String()
}

func (p *parser) handlers(t *Template, metas []*stepMeta) {
	for i, s := range t.Steps {
		m := metas[i]
		field := m.field("handler")
		line := m.fieldLine("handler")
		h := s.Handler
		switch {
		case h == "":
			p.errf(line, m.label, "handler", "the step has no handler (set handler, or handler_class in Rails spelling)")
		case strings.ContainsAny(h, " \t\r\n"):
			p.errf(line, m.label, field, "handler %q must not contain whitespace", h)
		case strings.HasPrefix(h, "lambda:"):
			if !lambdaNameRe.MatchString(strings.TrimPrefix(h, "lambda:")) {
				p.errf(line, m.label, field, "invalid Lambda function name in %q: want lambda:<function-name>[:<alias-or-version>]", h)
			}
		case strings.HasPrefix(h, "arn:"):
			parts := strings.Split(h, ":")
			if len(parts) < 7 || len(parts) > 8 || parts[2] != "lambda" || parts[5] != "function" || parts[6] == "" {
				p.errf(line, m.label, field, "invalid Lambda function ARN %q: want arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]", h)
			}
		case IsBuiltin(h):
		case strings.HasPrefix(h, "tasker."):
			p.errf(line, m.label, field, "unknown built-in handler %q: the built-ins are %s and %s", h, HandlerNoop, HandlerHTTP)
		case p.opts.Handlers != nil && !p.opts.Handlers.Has(h):
			p.errf(line, m.label, field, "unknown handler %q: it is not registered, not a built-in (%s, %s) and not a Lambda function (\"lambda:<name>\" or an ARN)", h, HandlerNoop, HandlerHTTP)
		}
	}
}

// suggest returns the candidate closest to s when it is close enough to be a typo.
func suggest(s string, candidates []string) string {
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	best, bestD := "", limit+1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD && d <= len(s)/2 {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
