package egress

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// blockedError says a destination is not allowed.
type blockedError struct {
	addr netip.Addr
	kind string
}

func (e *blockedError) Error() string {
	return fmt.Sprintf("destination not allowed: %s is %s", e.addr, e.kind)
}

// guard checks every address the client connects to.
type guard struct {
	allowAll bool
	allow    []netip.Prefix
}

// control runs after DNS resolution, just before connect, on the exact
// address being dialled.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &blockedError{kind: "not an IP address"}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &blockedError{kind: "not an IP address"}
	}
	return g.check(ip)
}

func (g *guard) check(ip netip.Addr) error {
	if g.allowAll {
		return nil
	}
	ip = ip.WithZone("")
	for _, p := range g.allow {
		if p.Contains(ip) || (ip.Is4In6() && p.Contains(ip.Unmap())) {
			return nil
		}
	}
	if kind := Classify(ip); kind != "" {
		return &blockedError{addr: ip, kind: kind}
	}
	return nil
}

// Ranges that are never public, with what they are.
var special = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "a reserved address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// Prefixes of IPv6 forms that carry an IPv4 address inside.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
	compat4   = netip.MustParsePrefix("::/96")
)

// Classify says what kind of non-public address ip is ("a loopback
// address", …), or "" for a public one. IPv6 forms that embed an IPv4
// address (mapped, compatible, NAT64, 6to4) are judged by that address.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not an IP address"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return Classify(ip.Unmap())
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip) || compat4.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
			return Classify(netip.AddrFrom4([4]byte(b[12:16])))
		case nat64Loc.Contains(ip):
			return "a NAT64 address"
		case sixToFour.Contains(ip):
			if k := Classify(netip.AddrFrom4([4]byte(b[2:6]))); k != "" {
				return k
			}
		}
	}
	if ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "a broadcast address"
	}
	for _, s := range special {
		if s.prefix.Contains(ip) {
			return s.kind
		}
	}
	return ""
}
