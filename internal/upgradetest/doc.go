// Package upgradetest holds the upgrade test (issue 12): a database built and
// populated by the first release (commit 8d49468: migrations 0001–0006 and
// that release's SQL, kept as fixtures in the test) is migrated to HEAD, read
// through the HEAD store and run to completion by a HEAD engine.
//
// It lives in its own package because it needs both migrate and engine,
// and migrate must not depend on engine. The package has no non-test code.
package upgradetest
