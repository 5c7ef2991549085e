package webhook

import (
	"net/netip"
	"testing"
)

// One row per range of the guard: an address inside it, whether the default guard refuses
// it, and whether it is still refused with loopback and private addresses allowed.
func TestGuardRefusesInnerAddresses(t *testing.T) {
	t.Parallel()
	strict := &Notifier{}
	open := &Notifier{cfg: Config{AllowLoopback: true, AllowPrivate: true}}
	for _, tc := range []struct {
		ip           string
		strict, open bool // refused?
	}{
		{"127.0.0.1", true, false},
		{"127.1.2.3", true, false},
		{"::1", true, false},
		{"::ffff:127.0.0.1", true, false},
		{"10.1.2.3", true, false},
		{"172.16.0.1", true, false},
		{"192.168.1.1", true, false},
		{"fd00:ec2::254", true, false},   // AWS metadata over IPv6 (unique local)
		{"100.100.100.200", true, false}, // Alibaba Cloud metadata (CGNAT range)
		{"100.64.0.1", true, false},
		{"169.254.169.254", true, true}, // metadata: never
		{"fe80::1", true, true},
		{"0.0.0.0", true, true},
		{"0.1.2.3", true, true},
		{"255.255.255.255", true, true},
		{"224.0.0.1", true, true},
		{"192.0.0.170", true, true},    // NAT64 discovery, IETF protocol assignments
		{"192.0.2.10", true, true},     // TEST-NET-1
		{"192.31.196.1", true, true},   // AS112
		{"192.52.193.1", true, true},   // AMT
		{"192.88.99.1", true, true},    // 6to4 relay anycast
		{"192.175.48.1", true, true},   // AS112 direct delegation
		{"198.18.0.1", true, true},     // benchmarking
		{"198.19.255.254", true, true}, // benchmarking, upper half of the /15
		{"198.51.100.7", true, true},   // TEST-NET-2
		{"203.0.113.9", true, true},    // TEST-NET-3
		{"240.0.0.1", true, true},      // reserved
		{"::", true, true},
		{"::a00:1", true, true},          // IPv4-compatible 10.0.0.1
		{"64:ff9b::a00:1", true, true},   // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", true, true}, // NAT64 even of a public address
		{"64:ff9b:1::a00:1", true, true}, // local-use NAT64
		{"100::1", true, true},           // discard-only
		{"100:0:0:1::1", true, true},     // dummy prefix
		{"2001::1", true, true},          // Teredo
		{"2001:2::1", true, true},        // benchmarking
		{"2001:db8::1", true, true},      // documentation
		{"2002:a00:1::1", true, true},    // 6to4 of 10.0.0.1
		{"2620:4f:8000::1", true, true},  // AS112
		{"3fff::1", true, true},          // documentation
		{"5f00::1", true, true},          // SRv6
		{"fec0::1", true, true},          // site-local
		{"ff02::1", true, true},          // multicast
		{"8.8.8.8", false, false},
		{"198.20.0.1", false, false}, // just past benchmarking
		{"2400:3200::1", false, false},
		{"2001:4860:4860::8888", false, false}, // 2001: but outside 2001::/23
	} {
		ip := netip.MustParseAddr(tc.ip).Unmap()
		if got := strict.refuse(ip) != ""; got != tc.strict {
			t.Errorf("default guard on %s: refused=%v (%q), want %v", tc.ip, got, strict.refuse(ip), tc.strict)
		}
		if got := open.refuse(ip) != ""; got != tc.open {
			t.Errorf("loopback+private allowed, on %s: refused=%v, want %v", tc.ip, got, tc.open)
		}
	}
}

// Every row of the table is exercised: its first address is refused by the default guard
// with that row's own reason (or an earlier, more specific row's).
func TestGuardTableEveryRow(t *testing.T) {
	t.Parallel()
	strict := &Notifier{}
	for _, r := range specialPurpose {
		for _, ip := range []netip.Addr{r.prefix.Addr(), lastAddr(r.prefix)} {
			if why := strict.refuse(ip); why == "" {
				t.Errorf("%s (in %s, %s) not refused", ip, r.prefix, r.why)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
