package webhook

import (
	"net/netip"
	"testing"
)

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
		{"169.254.169.254", true, true},  // metadata: never
		{"fe80::1", true, true},
		{"0.0.0.0", true, true},
		{"255.255.255.255", true, true},
		{"224.0.0.1", true, true},
		{"8.8.8.8", false, false},
		{"2400:3200::1", false, false},
	} {
		ip := netip.MustParseAddr(tc.ip).Unmap()
		if got := strict.refuse(ip) != ""; got != tc.strict {
			t.Errorf("default guard on %s: refused=%v, want %v", tc.ip, got, tc.strict)
		}
		if got := open.refuse(ip) != ""; got != tc.open {
			t.Errorf("loopback+private allowed, on %s: refused=%v, want %v", tc.ip, got, tc.open)
		}
	}
}
