// Package importrules holds the module's import rules as data and a test
// that fails on an import that breaks one (docs/architecture.md,
// "Import rules"). It is imported by nothing.
package importrules

// A Rule constrains the imports of the module's packages; paths are relative
// to the module path. A pattern "x/..." matches x and every package below it;
// "..." matches every package. A package may always import packages below
// itself (internal/store → internal/store/dbgen), whatever the rules say.
type Rule struct {
	Why    string
	Pkgs   []string // the packages the rule applies to
	Except []string // packages among Pkgs it does not apply to
	Deny   []string // module packages they must not import
	Only   []string // when non-nil, the only module packages they may import
}

// Groups of packages the rules name.
var (
	entryPoints = []string{"cmd/...", "functions/..."}
	// Adapters implement the engine's ports or expose it (HTTP, UI).
	portAdapters = []string{"internal/queue/...", "internal/invoke/...", "internal/events", "internal/trigger", "internal/blob"}
	wiring       = []string{"internal/devserver", "internal/lambdaapp", "internal/bench"}
	testSupport  = []string{
		"internal/pgtest", "internal/enginetest", "internal/queue/queuetest", "internal/queue/faulty",
		"internal/invoke/invoketest", "internal/testenv/...", "internal/lambdaapp/lambdatest",
		"internal/upgradetest", "internal/reliability", "internal/docstest", "internal/importrules",
	}
)

func cat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// Rules are the import rules; docs/architecture.md, "Import rules", lists
// the same in prose.
var Rules = []Rule{
	{
		Why:  "entry points are the top: nothing imports a main package or a Lambda function",
		Pkgs: []string{"..."},
		Deny: entryPoints,
	},
	{
		Why:    "test support stays out of production code",
		Pkgs:   []string{"..."},
		Except: cat(testSupport, []string{"scripts/..."}),
		Deny:   testSupport,
	},
	{
		Why: "leaf packages import nothing of the module but config, the strict configuration parsers (itself a leaf)",
		Pkgs: []string{"internal/contract", "internal/domain", "internal/jsonb", "internal/service",
			"internal/auth", "internal/dbconfig", "internal/embeddedpg", "internal/template",
			"internal/store/dbgen", "internal/wire", "internal/config", "sql", "templates", "runtimes"},
		Only: []string{"internal/config", "sdk/contract"},
	},
	{
		Why:  "graph is a leaf but for the domain's step states it draws",
		Pkgs: []string{"internal/graph"},
		Only: []string{"internal/domain"},
	},
	{
		Why:  "telemetry is a leaf but for the service contract its tracing provider implements (and config)",
		Pkgs: []string{"internal/telemetry"},
		Only: []string{"internal/service", "internal/config"},
	},
	{
		Why:  "the API client speaks the wire shapes only",
		Pkgs: []string{"internal/apiclient"},
		Only: []string{"internal/wire"},
	},
	{
		Why: "the CLI's client side talks to the API over HTTP: it imports no server package, even indirectly",
		Pkgs: []string{"internal/cli", "internal/cli/tasks", "internal/cli/token", "internal/cli/validate",
			"internal/cli/scaffold"},
		Deny: cat([]string{"internal/api", "internal/engine", "internal/store", "internal/migrate"}, portAdapters, wiring),
	},
	{
		Why:  "store is the bottom layer: it talks SQL and knows nothing above it",
		Pkgs: []string{"internal/store/..."},
		Deny: cat([]string{"internal/engine", "internal/api", "internal/template", "sdk", "internal/webui"}, portAdapters, wiring),
	},
	{
		Why:  "engine sees ports only, never an adapter, so local and AWS modes run the same engine code",
		Pkgs: []string{"internal/engine"},
		Deny: cat([]string{"internal/api", "sdk", "internal/webui", "internal/migrate"}, portAdapters, wiring),
	},
	{
		Why:  "port adapters implement the engine's interfaces; they reach the database only through the engine",
		Pkgs: portAdapters,
		Deny: cat([]string{"internal/store", "internal/api", "internal/migrate"}, wiring),
	},
	{
		Why:  "api is an adapter over the engine and its own Reader interface; it never wires queues, invokers or the database",
		Pkgs: []string{"internal/api"},
		Deny: cat([]string{"internal/migrate", "sdk", "internal/webui"}, portAdapters, wiring),
	},
	{
		Why:  "graphql is the API's second face over the same ports: it never wires queues, invokers or the database, nor imports the REST API",
		Pkgs: []string{"internal/graphql"},
		Deny: cat([]string{"internal/api", "internal/migrate", "sdk", "internal/webui"}, portAdapters, wiring),
	},
	{
		Why:    "graphql is mounted by the API only, behind its authentication",
		Pkgs:   []string{"..."},
		Except: []string{"internal/api"},
		Deny:   []string{"internal/graphql"},
	},
	{
		Why:  "the public handler SDK is imported by other modules: it must not drag the engine in, so it imports only itself and config (a stdlib-only leaf whose types it never exposes)",
		Pkgs: []string{"sdk/..."},
		Only: []string{"sdk", "sdk/contract", "internal/config"},
	},
	{
		Why:  "the SDK's wire contract is a leaf: the engine's internal/contract aliases its types",
		Pkgs: []string{"sdk/contract"},
		Only: []string{},
	},
	{
		Why:  "handlers are user code: they see the SDK only",
		Pkgs: []string{"handlers", "internal/examples"},
		Only: []string{"sdk", "sdk/contract", "internal/contract"},
	},
	{
		Why:  "the web UI renders graphs; it never reads the database",
		Pkgs: []string{"internal/webui"},
		Only: []string{"internal/graph", "internal/domain"},
	},
	{
		Why:    "devserver and bench are wired only by the commands that run them (bench wires devserver)",
		Pkgs:   []string{"..."},
		Except: []string{"cmd/...", "internal/cli/dev", "internal/cli/bench", "internal/bench"},
		Deny:   []string{"internal/devserver", "internal/bench"},
	},
	{
		Why:    "lambdaapp is wired only by functions/*",
		Pkgs:   []string{"..."},
		Except: []string{"functions/..."},
		Deny:   []string{"internal/lambdaapp"},
	},
}
