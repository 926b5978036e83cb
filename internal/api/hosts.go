package api

import (
	"net"
	"slices"
	"strings"
)

// EnvAllowedHosts names extra Host values a local server answers when
// auth is off: comma-separated names, each "name" (any port) or
// "name:port".
const EnvAllowedHosts = "TASKER_ALLOWED_HOSTS"

// LocalHosts returns the Host values a server listening on addr (host:port,
// as bound) answers when auth is off: localhost, 127.0.0.1 and [::1] with
// the port, the listen host itself when it is a specific address, and the
// extra names (from TASKER_ALLOWED_HOSTS). With port 80 the names are also
// allowed without a port, as browsers send them.
func LocalHosts(addr string, extra []string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, ""
	}
	names := []string{"localhost", "127.0.0.1", "[::1]"}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
		names = append(names, host)
	}
	var out []string
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for _, n := range names {
		if port != "" {
			add(n + ":" + port)
		}
		if port == "" || port == "80" {
			add(n)
		}
	}
	for _, e := range extra {
		add(strings.TrimSpace(e))
	}
	return out
}

// ParseAllowedHosts splits a TASKER_ALLOWED_HOSTS value.
func ParseAllowedHosts(v string) []string {
	var out []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// hostAllowed reports whether the request's Host matches one of allowed
// (lower case): exactly, or by name when the entry has no port.
func hostAllowed(allowed []string, host string) bool {
	host = strings.ToLower(host)
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
		if strings.Contains(h, ":") {
			name = "[" + h + "]"
		}
	}
	for _, a := range allowed {
		if a == host {
			return true
		}
		if _, _, err := net.SplitHostPort(a); err != nil && a == name {
			return true
		}
	}
	return false
}
