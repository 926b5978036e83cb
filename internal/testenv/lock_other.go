//go:build !unix

package testenv

// lockFile is a no-op where flock is unavailable: concurrent first builds
// may race, which wastes work but the rename into bin/ is atomic.
func lockFile(string) (func(), error) { return func() {}, nil }
