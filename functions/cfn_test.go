package functions_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/taskerhq/tasker/internal/testenv"
)

// cfnTemplate is a CloudFormation/SAM template decoded into plain values,
// with the short-form intrinsic tags turned into their long forms: !Ref X
// is {"Ref": X}, !GetAtt A.B is {"Fn::GetAtt": [A, B]}, !Condition C is
// {"Condition": C}, and any other !Fn is {"Fn::Fn": …}.
type cfnTemplate map[string]any

func loadTemplate(t *testing.T, rel string) cfnTemplate {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	v, err := fromNode(&doc)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", rel)
	}
	return m
}

func fromNode(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		return fromNode(n.Content[0])
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not supported by CloudFormation", n.Line)
	}
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", n.Content[i].Line, k)
			}
			val, err := fromNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!!") || n.Tag == "" {
			if err := n.Decode(&v); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			return v, nil
		}
		v = n.Value
	}
	switch tag := n.Tag; {
	case tag == "" || strings.HasPrefix(tag, "!!"):
		return v, nil
	case tag == "!Ref":
		return map[string]any{"Ref": v}, nil
	case tag == "!Condition":
		return map[string]any{"Condition": v}, nil
	case tag == "!GetAtt":
		if s, ok := v.(string); ok {
			res, attr, _ := strings.Cut(s, ".")
			return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	default:
		return map[string]any{"Fn::" + strings.TrimPrefix(tag, "!"): v}, nil
	}
}

func (c cfnTemplate) section(name string) map[string]any {
	m, _ := c[name].(map[string]any)
	return m
}

func (c cfnTemplate) resource(t *testing.T, name string) map[string]any {
	t.Helper()
	r, ok := c.section("Resources")[name].(map[string]any)
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	return r
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// path walks nested maps by keys.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func isRef(v any, name string) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 1 && m["Ref"] == name
}

func isGetAtt(v any, res, attr string) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	l, ok := m["Fn::GetAtt"].([]any)
	return ok && len(l) == 2 && l[0] == res && l[1] == attr
}

// pseudo parameters CloudFormation defines.
var pseudo = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

// attributes lists the GetAtt attributes of the resource types used.
var attributes = map[string][]string{
	"AWS::SQS::Queue":                             {"Arn", "QueueName", "QueueUrl"},
	"AWS::S3::Bucket":                             {"Arn"},
	"AWS::Serverless::Function":                   {"Arn"},
	"AWS::Lambda::Function":                       {"Arn"},
	"AWS::Events::Rule":                           {"Arn"},
	"AWS::Events::EventBus":                       {"Arn", "Name"},
	"AWS::ApiGatewayV2::Api":                      {"ApiEndpoint", "ApiId"},
	"AWS::IAM::Role":                              {"Arn", "RoleId"},
	"AWS::EC2::SecurityGroup":                     {"GroupId", "VpcId"},
	"AWS::RDS::DBProxy":                           {"Endpoint", "DBProxyArn", "VpcId"},
	"AWS::RDS::DBCluster":                         {"Endpoint.Address", "Endpoint.Port", "ReadEndpoint.Address", "DBClusterArn"},
	"AWS::SecretsManager::Secret":                 {"Id"},
	"AWS::SecretsManager::SecretTargetAttachment": {},
}

// refChecker checks every reference of a template.
type refChecker struct {
	t        *testing.T
	name     string
	tpl      cfnTemplate
	nested   map[string]cfnTemplate // Serverless::Application logical id -> its template
	customGA map[string][]string    // custom resource type -> attributes (Data keys)
	refs     int
}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

func (rc *refChecker) check() {
	for name, r := range rc.tpl.section("Resources") {
		res := r.(map[string]any)
		active := map[string]bool{}
		if c, ok := res["Condition"].(string); ok {
			rc.condition(name, c)
			active[c] = true
		}
		switch d := res["DependsOn"].(type) {
		case string:
			rc.resourceExists(name+".DependsOn", d)
		case []any:
			for _, x := range d {
				rc.resourceExists(name+".DependsOn", x.(string))
			}
		}
		rc.walk(name, res["Properties"], active)
	}
	for name, o := range rc.tpl.section("Outputs") {
		active := map[string]bool{}
		if c, ok := o.(map[string]any)["Condition"].(string); ok {
			rc.condition("Outputs."+name, c)
			active[c] = true
		}
		rc.walk("Outputs."+name, o.(map[string]any)["Value"], active)
	}
	for name, c := range rc.tpl.section("Conditions") {
		rc.walk("Conditions."+name, c, nil)
	}
	for name, r := range rc.tpl.section("Rules") {
		rc.walk("Rules."+name, r, nil)
	}
	if g := rc.tpl.section("Globals"); g != nil {
		rc.walk("Globals", g, nil)
	}
}

func (rc *refChecker) condition(where, c string) {
	if _, ok := rc.tpl.section("Conditions")[c]; !ok {
		rc.t.Errorf("%s: %s names an unknown condition %q", rc.name, where, c)
	}
}

func (rc *refChecker) resourceExists(where, r string) map[string]any {
	res, ok := rc.tpl.section("Resources")[r].(map[string]any)
	if !ok {
		rc.t.Errorf("%s: %s refers to an unknown resource %q", rc.name, where, r)
		return nil
	}
	return res
}

// conditional checks that a reference to a conditional resource sits
// where that condition holds (CloudFormation rejects the template
// otherwise).
func (rc *refChecker) conditional(where string, res map[string]any, target string, active map[string]bool) {
	if c, ok := res["Condition"].(string); ok && !active[c] {
		rc.t.Errorf("%s: %s refers to %s, which exists only under condition %s, outside an !If on it", rc.name, where, target, c)
	}
}

func (rc *refChecker) ref(where, name string, active map[string]bool) {
	rc.refs++
	if pseudo[name] {
		return
	}
	if _, ok := rc.tpl.section("Parameters")[name]; ok {
		return
	}
	base, suffix, dotted := strings.Cut(name, ".")
	if dotted { // SAM: Function.Alias and Function.Version with AutoPublishAlias
		res := rc.resourceExists(where, base)
		if res != nil && (res["Type"] != "AWS::Serverless::Function" || props(res)["AutoPublishAlias"] == nil || (suffix != "Alias" && suffix != "Version")) {
			rc.t.Errorf("%s: %s: !Ref %s needs a Serverless function with AutoPublishAlias", rc.name, where, name)
		}
		return
	}
	if res := rc.resourceExists(where, name); res != nil {
		rc.conditional(where, res, name, active)
	}
}

func (rc *refChecker) getAtt(where, res, attr string, active map[string]bool) {
	rc.refs++
	r := rc.resourceExists(where, res)
	if r == nil {
		return
	}
	rc.conditional(where, r, res, active)
	typ, _ := r["Type"].(string)
	switch {
	case typ == "AWS::Serverless::Application":
		out, ok := strings.CutPrefix(attr, "Outputs.")
		nested := rc.nested[res]
		if !ok || nested == nil {
			rc.t.Errorf("%s: %s: !GetAtt %s.%s: want Outputs.<name> of a known nested template", rc.name, where, res, attr)
		} else if _, ok := nested.section("Outputs")[out]; !ok {
			rc.t.Errorf("%s: %s: the nested template of %s has no output %s", rc.name, where, res, out)
		}
	case strings.HasPrefix(typ, "Custom::"):
		if !contains(rc.customGA[typ], attr) {
			rc.t.Errorf("%s: %s: %s answers no attribute %s (it has %v)", rc.name, where, typ, attr, rc.customGA[typ])
		}
	default:
		known, ok := attributes[typ]
		if !ok || !contains(known, attr) {
			rc.t.Errorf("%s: %s: !GetAtt %s.%s: %s has no attribute %s known to this test", rc.name, where, res, attr, typ, attr)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (rc *refChecker) walk(where string, v any, active map[string]bool) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			rc.walk(fmt.Sprintf("%s[%d]", where, i), e, active)
		}
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					if s, ok := arg.(string); ok {
						rc.ref(where, s, active)
					} else {
						rc.t.Errorf("%s: %s: Ref of a non-string %v", rc.name, where, arg)
					}
					return
				case "Fn::GetAtt":
					l, ok := arg.([]any)
					if !ok || len(l) != 2 {
						rc.t.Errorf("%s: %s: malformed GetAtt %v", rc.name, where, arg)
						return
					}
					rc.getAtt(where, l[0].(string), l[1].(string), active)
					return
				case "Condition":
					if s, ok := arg.(string); ok {
						rc.condition(where, s)
						return
					}
				case "Fn::If":
					l, ok := arg.([]any)
					if !ok || len(l) != 3 {
						rc.t.Errorf("%s: %s: malformed If %v", rc.name, where, arg)
						return
					}
					c, _ := l[0].(string)
					rc.condition(where, c)
					then := map[string]bool{c: true}
					for k := range active {
						then[k] = true
					}
					rc.walk(where+"(if "+c+")", l[1], then)
					rc.walk(where+"(else "+c+")", l[2], active)
					return
				case "Fn::Sub":
					var s string
					vars := map[string]bool{}
					switch a := arg.(type) {
					case string:
						s = a
					case []any:
						s, _ = a[0].(string)
						if m, ok := a[1].(map[string]any); ok {
							for name, val := range m {
								vars[name] = true
								rc.walk(where, val, active)
							}
						}
					}
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						name := m[1]
						if vars[name] {
							continue
						}
						if res, attr, ok := strings.Cut(name, "."); ok && !pseudo[name] {
							rc.getAtt(where, res, attr, active)
						} else {
							rc.ref(where, name, active)
						}
					}
					return
				}
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rc.walk(where+"."+k, x[k], active)
		}
	}
}

// samTranslate returns template.yaml as CloudFormation deploys it: expanded
// by the SAM translator (scripts/sam-translate, which `make lint` runs too)
// with the given parameter values (Name=Value).
func samTranslate(t *testing.T, params ...string) cfnTemplate {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{filepath.Join(root, "scripts", "sam-translate", "sam-translate.py"), filepath.Join(root, "template.yaml")}, params...)
	cmd := exec.Command("python3", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sam-translate: %v\n%s(the SAM translator: pip install aws-sam-translator)", err, stderr.String())
	}
	var tpl map[string]any
	if err := json.Unmarshal(out, &tpl); err != nil {
		t.Fatalf("sam-translate output: %v", err)
	}
	return normalizeJSON(tpl).(map[string]any)
}

// normalizeJSON turns JSON numbers that are integers into int, as the YAML
// decoder gives them, so the same helpers read both forms.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	}
	return v
}

// TestCfnLint runs cfn-lint, as `make lint` does, on both templates.
func TestCfnLint(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("cfn-lint"); err != nil {
		t.Fatal("cfn-lint is not installed: pip install cfn-lint")
	}
	cmd := exec.Command("cfn-lint", "template.yaml", "infra/database.yaml")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}

// jsonText is v as JSON, for "mentions" checks.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
