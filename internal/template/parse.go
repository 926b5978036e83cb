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
	// inputs as given: "all", or a list of step names.
	inputsAll, inputsGiven bool
	inputs                 []string
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
	given := p.topFields(t, root)
	p.identity(t, given["namespace"], given["name"], given["version"])
	if kv := given["description"]; kv != nil {
		if s, ok := (field{p: p, kv: *kv, name: kv.key}).asString(); ok {
			t.Description = s
		}
	}

	metas := p.steps(t, given["steps"])
	index := map[string]int{}
	for i, s := range t.Steps {
		if _, dup := index[s.Name]; !dup && s.Name != "" {
			index[s.Name] = i
		}
	}
	if kv := given["environments"]; kv != nil {
		p.environments(t, kv, index, metas)
	}
	for i := range t.Steps {
		p.finishConfig(&t.Steps[i], metas[i])
	}
	if kv := given["context_schema"]; kv != nil {
		p.contextSchema(t, kv)
	}
	if kv := given["triggers"]; kv != nil {
		p.triggers(t, kv)
	}
	if kv := given["schedules"]; kv != nil {
		p.schedules(t, kv)
	}
	if kv := given["concurrency"]; kv != nil {
		p.taskConcurrency(t, kv)
	}
	p.graph(t, metas)
	p.aliases(t, given["handler_aliases"], metas)
	p.handlers(t, metas)
	p.resolveInputs(t, metas)
	p.triggerRules(t, metas)

	if len(p.errs) > 0 {
		return nil
	}
	t.index = index
	t.levels, _ = computeLevels(t.Steps)
	return t
}

// topFields reads the keys of a template, in document order, and returns
// the value of each field given, by canonical name.
func (p *parser) topFields(t *Template, root *yaml.Node) map[string]*pair {
	given := map[string]*pair{}
	for _, kv := range mapPairs(root, p.dupKey("", "")) {
		spec, known := topFields.lookup(kv.key)
		switch {
		case known && spec.ignored:
			t.Ignored = append(t.Ignored, kv.key)
		case strings.HasPrefix(kv.key, "x-"):
			// extension field, e.g. a home for YAML anchors
		case !known:
			p.unknownField(kv.k.Line, "", kv.key, kv.key, topFields.known)
		case isNull(kv.v):
		case given[spec.name] != nil:
			p.conflict(kv, "", given[spec.name].key)
		default:
			given[spec.name] = &kv
		}
	}
	return given
}

// conflict reports kv as a second spelling of a field given as first.
func (p *parser) conflict(kv pair, step, first string) {
	p.errf(kv.k.Line, step, kv.key, "conflicts with %q (two spellings of one field; keep one)", first)
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
	s := Step{Retry: DefaultRetry(), TimeoutSeconds: DefaultTimeoutSeconds, DependsOn: []string{}, TriggerRule: TriggerAllSuccess}
	n = resolve(n)
	m := &stepMeta{label: fmt.Sprintf("#%d", i+1), line: n.Line, fields: map[string]spelled{}}
	if n.Kind != yaml.MappingNode {
		p.errf(n.Line, m.label, listKey, "each step must be a mapping, got %s", describe(n))
		return s, m
	}
	pairs := mapPairs(n, func(key string, line int) { p.errf(line, m.label, key, "given more than once") })
	p.stepName(&s, m, n, pairs)
	b := &stepBuild{p: p, s: &s, m: m}
	for _, kv := range pairs {
		spec, known := stepFields.lookup(kv.key)
		switch {
		case known && spec.ignored:
			t.Ignored = append(t.Ignored, "steps."+m.label+"."+kv.key)
		case known && spec.apply == nil:
			// read before the loop
		case !known:
			p.unknownField(kv.k.Line, m.label, kv.key, kv.key, stepFields.known)
		case isNull(kv.v):
		case b.claim(spec, kv):
			spec.apply(b, field{p: p, kv: kv, step: m.label, name: kv.key})
		}
	}
	b.finishRetry()
	return s, m
}

// stepName reads the name of a step, which then labels the step in errors.
func (p *parser) stepName(s *Step, m *stepMeta, n *yaml.Node, pairs []pair) {
	for _, kv := range pairs {
		if kv.key != "name" {
			continue
		}
		if name, bad := scalarString(kv.v); bad != "" || isNull(kv.v) {
			p.errf(kv.v.Line, m.label, "name", "step name must be a string, got %s", describe(kv.v))
		} else if !ValidName(name) {
			p.errf(kv.v.Line, m.label, "name", "invalid step name %q: %s", name, nameRule)
			s.Name = name
		} else {
			s.Name, m.label = name, name
		}
		return
	}
	p.errf(n.Line, m.label, "name", "the step has no name")
}

// stepBuild is a step being read: stepFields and retryFields apply to it.
type stepBuild struct {
	p *parser
	s *Step
	m *stepMeta

	// Retry as given, reconciled by finishRetry.
	maxAttempts        *int
	maxAttemptsField   string
	retryLimit         *int
	retryLimitLine     int
	retryable          *bool
	retryableLine      int
	backoffSet, maxSet bool
}

// claim records the spelling a field of the step was given under. A second
// spelling of a field that does not merge is reported, and not applied.
func (b *stepBuild) claim(spec *fieldSpec[stepBuild], kv pair) bool {
	prev, given := b.m.fields[spec.name]
	switch {
	case !given:
		b.m.fields[spec.name] = spelled{kv.key, kv.k.Line}
	case !spec.merge:
		b.p.conflict(kv, b.m.label, prev.key)
		return false
	}
	return true
}

// dependsOn adds the steps listed to the step's dependencies. The Rails
// engine takes the union of depends_on_step and depends_on_steps.
func (b *stepBuild) dependsOn(f field) {
	list, ok := f.asList()
	if !ok {
		return
	}
	for _, d := range list {
		d = strings.TrimSpace(d)
		if !slices.Contains(b.s.DependsOn, d) {
			b.s.DependsOn = append(b.s.DependsOn, d)
			b.m.deps = append(b.m.deps, depRef{name: d, field: f.name, line: f.line()})
		}
	}
}

// retry reads the native retry mapping.
func (b *stepBuild) retry(f field) {
	rn := resolve(f.kv.v)
	if rn.Kind != yaml.MappingNode {
		f.errf("must be a mapping with %s, got %s", strings.Join(retryFields.known, ", "), describe(rn))
		return
	}
	for _, kv := range mapPairs(rn, b.p.dupKey(f.step, "retry.")) {
		name := "retry." + kv.key
		if isNull(kv.v) {
			continue
		}
		spec, known := retryFields.lookup(kv.key)
		if !known {
			b.p.unknownField(kv.k.Line, f.step, name, kv.key, retryFields.known)
			continue
		}
		spec.apply(b, field{p: b.p, kv: kv, step: f.step, name: name})
	}
}

// finishRetry settles the number of attempts: native retry.max_attempts,
// or Rails default_retry_limit (0 meaning "no retries"), and
// default_retryable: false => one attempt. It then checks the backoff.
func (b *stepBuild) finishRetry() {
	p, s, m, step := b.p, b.s, b.m, b.m.label
	if b.retryLimit != nil {
		if b.maxAttempts != nil {
			p.errf(b.retryLimitLine, step, "default_retry_limit", "conflicts with %q (keep one)", b.maxAttemptsField)
		} else {
			v := *b.retryLimit
			if v == 0 {
				v = 1
			}
			b.maxAttempts, b.maxAttemptsField = &v, "default_retry_limit"
			m.fields["max_attempts"] = spelled{"default_retry_limit", b.retryLimitLine}
		}
	}
	if b.maxAttempts != nil {
		if *b.maxAttempts < 1 || *b.maxAttempts > MaxMaxAttempts {
			p.errf(m.fieldLine("max_attempts"), step, b.maxAttemptsField, "must be between 1 and %d, got %d", MaxMaxAttempts, *b.maxAttempts)
		}
		s.Retry.MaxAttempts = *b.maxAttempts
	}
	if b.retryable != nil && !*b.retryable {
		if b.maxAttempts != nil && b.maxAttemptsField != "default_retry_limit" && *b.maxAttempts > 1 {
			p.errf(b.retryableLine, step, "default_retryable", "is false but %s is %d (keep one)", b.maxAttemptsField, *b.maxAttempts)
		}
		s.Retry.MaxAttempts = 1
	}
	if (b.backoffSet || b.maxSet) && s.Retry.BackoffBase > 0 && s.Retry.MaxBackoff > 0 && s.Retry.MaxBackoff < s.Retry.BackoffBase {
		f := "retry.max_backoff_seconds"
		if !b.maxSet {
			f = "retry.backoff_base_seconds"
		}
		p.errf(m.fieldLine("max_backoff"), step, f, "max_backoff_seconds (%v) must not be less than backoff_base_seconds (%v)",
			s.Retry.MaxBackoff.Seconds(), s.Retry.BackoffBase.Seconds())
	}
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
	var waitProblems []problem
	switch s.Handler {
	case HandlerWait:
		waitProblems = waitConfigProblems(m.config)
	case HandlerCallback:
		waitProblems = callbackConfigProblems(m.config)
	case HandlerWorkflow:
		waitProblems = workflowConfigProblems(m.config)
	}
	for _, pr := range waitProblems {
		p.errf(m.fieldLine("config"), m.label, m.field("config")+"."+pr.field, "%s", pr.msg)
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
		for _, kv := range mapPairs(tn, p.dupKey("", prefix+".")) {
			name := prefix + "." + kv.key
			spec, known := triggerFields.lookup(kv.key)
			switch {
			case !known:
				p.unknownField(kv.k.Line, "", name, kv.key, triggerFields.known)
			case isNull(kv.v):
			default:
				fieldLine[kv.key] = kv.v.Line
				spec.apply(&tr, field{p: p, kv: kv, name: name})
			}
		}
		p.checkTrigger(prefix, tn.Line, tr, fieldLine)
		t.Triggers = append(t.Triggers, tr)
	}
}

// checkTrigger checks that a trigger has the fields its type needs, and
// none of the other type's. fieldLine has the line of each field given.
func (p *parser) checkTrigger(prefix string, line int, tr Trigger, fieldLine map[string]int) {
	switch tr.Type {
	case "":
		p.errf(line, "", prefix+".type", "a trigger needs a type: %q or %q", TriggerS3, TriggerEventBridge)
	case TriggerS3:
		if tr.Bucket == "" {
			p.errf(line, "", prefix+".bucket", "an s3 trigger needs a bucket")
		}
		for _, f := range []string{"source", "detail_type", "detail"} {
			if l, ok := fieldLine[f]; ok {
				p.errf(l, "", prefix+"."+f, "only valid for eventbridge triggers")
			}
		}
	case TriggerEventBridge:
		if len(tr.Source) == 0 && len(tr.DetailType) == 0 {
			p.errf(line, "", prefix+".source", "an eventbridge trigger needs a source or a detail_type to match")
		}
		for _, f := range []string{"bucket", "prefix", "suffix"} {
			if l, ok := fieldLine[f]; ok {
				p.errf(l, "", prefix+"."+f, "only valid for s3 triggers")
			}
		}
	default:
		p.errf(fieldLine["type"], "", prefix+".type", "unknown trigger type %q: want %q or %q", tr.Type, TriggerS3, TriggerEventBridge)
	}
}

// triggerDetail reads an EventBridge pattern on the event's detail.
func triggerDetail(tr *Trigger, f field) {
	if resolve(f.kv.v).Kind != yaml.MappingNode {
		f.errf("must be a mapping (an EventBridge pattern on the event's detail), got %s", describe(f.kv.v))
		return
	}
	v, err := toJSON(f.kv.v, 0)
	if err != nil {
		f.errf("%v", err)
		return
	}
	// Round-trip through JSON so numbers are float64, as in decoded events.
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &tr.Detail)
	}
	if err != nil {
		f.errf("%v", err)
	}
}

// triggerContext reads the map from context fields to event paths.
func triggerContext(tr *Trigger, f field) {
	cn := resolve(f.kv.v)
	if cn.Kind != yaml.MappingNode {
		f.p.errf(cn.Line, "", f.name, "must map context fields to event paths like \"$.detail.order_id\", got %s", describe(cn))
		return
	}
	tr.Context = map[string]string{}
	for _, c := range mapPairs(cn, f.p.dupKey("", f.name+".")) {
		cf := f.name + "." + c.key
		v, bad := scalarString(c.v)
		switch {
		case bad != "" || isNull(c.v):
			f.p.errf(c.v.Line, "", cf, "must be a path into the event like \"$.detail.order_id\", got %s", describe(c.v))
		case !strings.HasPrefix(v, "$"):
			f.p.errf(c.v.Line, "", cf, "event path %q must start with \"$\" (e.g. \"$.detail.order_id\", \"$.bucket\", \"$.key\")", v)
		case c.key == "":
			f.p.errf(c.k.Line, "", cf, "context field name must not be empty")
		default:
			tr.Context[c.key] = v
		}
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
			p.errf(line, m.label, field, "unknown built-in handler %q: the built-ins are %s, %s, %s, %s and %s", h, HandlerNoop, HandlerHTTP, HandlerWait, HandlerCallback, HandlerWorkflow)
		case p.opts.Handlers != nil && !p.opts.Handlers.Has(h):
			p.errs = append(p.errs, &Error{File: p.file, Line: line, Step: m.label, Field: field, Handler: h, Err: ErrUnknownHandler,
				Msg: fmt.Sprintf("unknown handler %q: it is not registered, not a built-in (%s, %s), not a Lambda function (\"lambda:<name>\" or an ARN) and not mapped by handler_aliases", h, HandlerNoop, HandlerHTTP)})
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
