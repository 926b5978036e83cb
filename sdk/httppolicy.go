package sdk

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/taskerhq/tasker/internal/config"
)

// Environment variables of the tasker.http outbound policy, read where the
// registry is built (the Lambda handlers function and tasker dev).
const (
	// EnvHTTPAllowedHosts is a comma-separated allow-list of the hosts
	// tasker.http may call: exact names or IP addresses, or "*.suffix"
	// for any subdomain of suffix. Unset or empty: any host.
	EnvHTTPAllowedHosts = "TASKER_HTTP_ALLOWED_HOSTS"
	// EnvHTTPDenyPrivate ("true"/"false") refuses connections to
	// loopback, private, link-local, shared (100.64/10), multicast and
	// unspecified addresses, checked on the address actually dialled.
	EnvHTTPDenyPrivate = "TASKER_HTTP_DENY_PRIVATE"
)

// Error codes of the tasker.http outbound policy.
const (
	CodeHostNotAllowed = "host_not_allowed"
	CodeAddressDenied  = "address_denied"
)

// HTTPPolicy restricts where the built-in tasker.http handler may connect.
// The zero policy allows everything.
type HTTPPolicy struct {
	// AllowedHosts, when not empty, lists the hosts requests may go to:
	// exact host names or IP addresses (case-insensitive, any port), or
	// "*.example.com" for any name under example.com (not example.com
	// itself).
	AllowedHosts []string
	// DenyPrivate refuses loopback, private, link-local, shared,
	// multicast and unspecified addresses. It is checked on the resolved
	// IP when the connection is dialled, so a name that resolves (or
	// re-resolves) to such an address is refused too, and no proxy from
	// HTTP_PROXY/HTTPS_PROXY is used.
	DenyPrivate bool
}

// HTTPPolicyFromEnv reads EnvHTTPAllowedHosts and EnvHTTPDenyPrivate;
// denyPrivateDefault applies when the latter is unset (on in Lambda, off
// for tasker dev). Invalid values are an error naming the variable.
func HTTPPolicyFromEnv(getenv func(string) string, denyPrivateDefault bool) (HTTPPolicy, error) {
	p := HTTPPolicy{}
	var err error
	if p.DenyPrivate, err = config.Bool(getenv, EnvHTTPDenyPrivate, denyPrivateDefault); err != nil {
		return HTTPPolicy{}, err
	}
	if v := strings.TrimSpace(getenv(EnvHTTPAllowedHosts)); v != "" {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				p.AllowedHosts = append(p.AllowedHosts, h)
			}
		}
		if err := p.Validate(); err != nil {
			return HTTPPolicy{}, fmt.Errorf("%s: %w", EnvHTTPAllowedHosts, err)
		}
	}
	return p, nil
}

// Validate checks the AllowedHosts patterns.
func (p HTTPPolicy) Validate() error {
	for _, h := range p.AllowedHosts {
		if err := validHostPattern(h); err != nil {
			return err
		}
	}
	return nil
}

func validHostPattern(pat string) error {
	name := normalizeHost(pat)
	name = strings.TrimPrefix(name, "*.")
	if _, err := netip.ParseAddr(name); err == nil {
		if strings.HasPrefix(pat, "*.") {
			return fmt.Errorf("%q: a wildcard needs a domain name, not an IP address", pat)
		}
		return nil
	}
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name (want a name such as api.example.com or *.example.com, without scheme or port)", pat)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a host name (want a name such as api.example.com or *.example.com, without scheme or port)", pat)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a host name (want a name such as api.example.com or *.example.com, without scheme or port)", pat)
			}
		}
	}
	return nil
}

// normalizeHost lower-cases a host, drops IPv6 brackets and a trailing dot.
func normalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}

// allowsHost reports whether host (without port) passes AllowedHosts.
func (p HTTPPolicy) allowsHost(host string) bool {
	if len(p.AllowedHosts) == 0 {
		return true
	}
	host = normalizeHost(host)
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	for _, pat := range p.AllowedHosts {
		pat = normalizeHost(pat)
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if a, err := netip.ParseAddr(pat); err == nil {
			pat = a.Unmap().String()
		}
		if host == pat {
			return true
		}
	}
	return false
}

// errAddressDenied is the cause of a dial refused by DenyPrivate.
var errAddressDenied = errors.New("address refused")

type deniedAddressError struct{ addr netip.Addr }

func (e *deniedAddressError) Error() string {
	return fmt.Sprintf("%s is a loopback, private, link-local or otherwise non-public address; %s is on", e.addr, EnvHTTPDenyPrivate)
}

func (e *deniedAddressError) Unwrap() error { return errAddressDenied }

// nonPublic lists the ranges DenyPrivate refuses beyond those the netip
// predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4
}

// IsNonPublicAddr reports whether DenyPrivate refuses a.
func IsNonPublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// denyPrivateControl is a net.Dialer Control refusing non-public
// addresses. It sees the IP actually being connected to, after name
// resolution, so DNS rebinding cannot get past it.
func denyPrivateControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check dial address %q: %v", errAddressDenied, address, err)
	}
	if IsNonPublicAddr(ap.Addr()) {
		return &deniedAddressError{addr: ap.Addr().Unmap()}
	}
	return nil
}

// policyClient returns the client tasker.http uses under p: client (nil:
// a clone of the default transport) with, for DenyPrivate, a guarded
// dialer and no proxy. An error means the client's transport cannot be
// guarded; the handler then refuses every request rather than run
// unguarded.
func policyClient(client *http.Client, p HTTPPolicy) (*http.Client, error) {
	own := client == nil || client.Transport == nil
	if client == nil {
		client = &http.Client{}
	}
	if own {
		// Not http.DefaultTransport itself: other code may change it.
		c := *client
		c.Transport = defaultTransport()
		client = &c
	}
	if !p.DenyPrivate {
		return client, nil
	}
	t, ok := client.Transport.(*http.Transport)
	if !ok || (!own && (t.DialContext != nil || t.Dial != nil || t.DialTLSContext != nil || t.DialTLS != nil)) {
		return nil, fmt.Errorf("%s is on but the HTTP client's transport (%T) has its own dialer, which cannot be guarded", EnvHTTPDenyPrivate, client.Transport)
	}
	t = t.Clone()
	t.Proxy = nil
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: denyPrivateControl}
	t.DialContext = d.DialContext
	c := *client
	c.Transport = t
	return &c, nil
}

// defaultTransport is a clone of http.DefaultTransport, or an equivalent
// when something replaced it with another RoundTripper.
func defaultTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: d.DialContext, ForceAttemptHTTP2: true,
		MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
