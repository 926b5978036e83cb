// Package template loads and validates workflow templates: versioned YAML
// descriptions of a DAG of steps (docs/templates.md).
//
// # Format
//
// Native spelling:
//
//	namespace: ecommerce            # default "default"
//	name: process_order
//	version: 1.2.0                  # semver MAJOR.MINOR.PATCH[-pre]; default "0.1.0"
//	description: …
//	context_schema: {…}             # JSON Schema (draft 2020-12 unless $schema says otherwise)
//	steps:
//	  - name: process_payment
//	    handler: ecommerce.process_payment
//	    depends_on: [validate_order]  # a string or a list
//	    config: {…}                   # handed to the handler as "config"
//	    retry: {max_attempts: 3, backoff_base_seconds: 1, max_backoff_seconds: 300, jitter: 0.1}
//	    timeout_seconds: 60           # 1..900, default 300
//	    concurrency: 10               # cap on in-flight runs across tasks; 0 = unlimited
//	    # or concurrency: {limit: 2, key: "${context.customer_id}"}: a cap per key value
//	    rate_limit: {per_second: 2, burst: 5, key: "${context.customer_id}"} # starts per key; key optional
//	    skippable: false
//	    when: "context.amount > 0"   # CEL over context and the parents' results; false skips the step
//	    trigger_rule: all_success     # or all_done (a finally), one_failed (a catch, a compensation)
//	triggers:
//	  - type: s3
//	    bucket: incoming-data
//	    prefix: exports/
//	    suffix: .csv
//	    context: {source_bucket: $.bucket, source_key: $.key}
//	  - type: eventbridge
//	    source: shop.orders           # a string or a list
//	    detail_type: Order Placed     # a string or a list
//	    detail: {channel: [web]}      # optional EventBridge pattern on detail
//	    context: {order_id: $.detail.order_id}
//
// Rails Tasker templates load unchanged. Aliases: namespace_name → namespace,
// step_templates → steps, depends_on_step / depends_on_steps → depends_on
// (their union), handler_class → handler, handler_config → config,
// schema → context_schema, default_retry_limit → retry.max_attempts
// (0 means one attempt), default_retryable: false → retry.max_attempts 1.
// A name "ns/name" keeps the part after the slash; the part before becomes
// the namespace when none is given.
//
// `environments: {<env>: {step_templates: [{name, handler_config}]}}` is
// validated for every environment and applied for Options.Env (default
// $TASKER_ENV, else "development"): the listed step's handler_config is
// deep-merged over its base config (maps merge, other values replace).
//
// Fields without meaning here are accepted and listed in Template.Ignored:
// task_handler_class, module_namespace, class_name, concurrent, named_steps,
// default_dependent_system, retry_strategies, monitoring, a top-level
// handler_config, custom_events (top level or per step), a step's
// dependent_system, and the environments that were not selected
// ("environments.production"). Any other unknown field is an error (a typo
// such as depend_on is reported with a suggestion). Top-level fields whose
// name starts with "x-" are extensions and are skipped, which gives YAML
// anchors a home:
//
//	x-defaults: &defaults {retry: {max_attempts: 5}, timeout_seconds: 60}
//	steps:
//	  - {<<: *defaults, name: a, handler: shop.a}
//
// A numeric handler_config.timeout_seconds, common in Rails templates, is
// only configuration for the handler: it does not change the step's
// timeout_seconds.
//
// # Handlers
//
// A step's handler is resolved by name:
//   - "arn:…" (a Lambda function ARN) or "lambda:<function-name>[:<qualifier>]"
//     is a Lambda function invoked asynchronously;
//   - "tasker.noop" and "tasker.http" are built-ins and always known
//     (tasker.http needs config.url);
//   - anything else is a registered (Go) handler, e.g. "ecommerce.process_payment".
//     When Options.Handlers is set, such names must be registered; without it
//     any name is accepted, so Rails class names like
//     "Ecommerce::StepHandlers::ProcessPaymentHandler" validate.
//
// # Validation
//
// Loading reports every problem at once (Errors), each naming file, line,
// step and field: unknown fields, invalid names (letters, digits, '_', '.',
// '-'; safe in URLs), invalid versions, duplicate steps, unknown
// dependencies, self-dependencies, cycles ("a -> b -> c -> a", read "a
// depends on b"), missing or unknown handlers, an invalid context_schema,
// out-of-range retry, timeout and concurrency values, invalid triggers,
// and a tasker.http config whose url is not absolute http(s) with a host,
// whose method is not an HTTP token, or whose timeout_seconds is not in
// (0, 900].
//
// Loading has a budget (Limits: file size, alias count, expanded nodes and
// bytes, nesting depth; DefaultLimits unless Options.Limits says otherwise).
// It is checked before any alias is expanded, so an alias bomb or a
// merge-key chain is refused in milliseconds with an error wrapping
// ErrBudget.
//
// Context schemas assert "format" (an invalid email fails) and never load
// external $ref documents.
package template
