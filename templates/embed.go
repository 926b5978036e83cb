// Package templates embeds the shipped example workflow templates so every
// binary can serve them without a templates directory (TASKER_TEMPLATES_DIR
// defaults to these; docs/architecture.md, "Configuration"). Load them with
// template.LoadFS(templates.FS, opts).
package templates

import "embed"

// FS holds the shipped templates (*.yaml at the top level).
//
//go:embed *.yaml
var FS embed.FS
