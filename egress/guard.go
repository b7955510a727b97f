package egress

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// errBlocked says a destination is not allowed. Its text is the
// FailureReason, word for word the contract's: which range the address is
// in (Classify) is left out, as the contract fixes this reason's text.
var errBlocked = errors.New("destination not allowed")

// guard checks every address the client connects to. It is read-only once
// built.
type guard struct {
	allowAll bool
	allow    []netip.Prefix
}

// newGuard returns a guard; allow prefixes written in IPv4-mapped IPv6 form
// are stored in their IPv4 form so both spellings match.
func newGuard(allowAll bool, allow []netip.Prefix) *guard {
	g := &guard{allowAll: allowAll, allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g
}

// control is the net.Dialer's Control hook: it runs after DNS resolution,
// just before connect, on the exact address being dialled, so a name that
// re-binds between a check and the connect can't pass. Any port is allowed.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errBlocked
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return errBlocked
	}
	return g.check(ip)
}

// check returns errBlocked when ip is not public and not allowed.
func (g *guard) check(ip netip.Addr) error {
	if g.allowAll {
		return nil
	}
	ip = ip.WithZone("")
	for _, p := range g.allow {
		if p.Contains(ip) || ip.Is4In6() && p.Contains(ip.Unmap()) {
			return nil
		}
	}
	if Classify(ip) != "" {
		return errBlocked
	}
	return nil
}

// special lists the ranges that are never public, with what they are
// (IANA special-purpose registries, plus multicast and the IPv6 site-local
// range).
var special = [...]struct {
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
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 local-use address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "a reserved address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// IPv6 prefixes: the global unicast space, and forms that carry an IPv4
// address inside.
var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052, IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056, IPv4 in bits 16-47
	compat4        = netip.MustParsePrefix("::/96")        // deprecated IPv4-compatible, last 32 bits
	broadcast4     = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// Classify says what kind of non-public address ip is ("a loopback
// address", "a private address", …), or "" for a public one. IPv6 forms
// that embed an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
// NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that address; other IPv6
// addresses outside 2000::/3 are reserved. An invalid ip is "not an IP
// address". Pure; safe for concurrent use.
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not an IP address"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip),
			compat4.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
			return Classify(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			if kind := Classify(netip.AddrFrom4([4]byte(b[2:6]))); kind != "" {
				return kind
			}
		}
	}
	switch ip {
	case broadcast4:
		return "a broadcast address"
	case netip.IPv4Unspecified():
		return "an unspecified address"
	}
	for _, s := range special {
		if s.prefix.Contains(ip) {
			return s.kind
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return "a reserved address"
	}
	return ""
}
