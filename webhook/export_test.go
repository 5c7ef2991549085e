package webhook

import (
	"context"
	"net"
	"net/http"
)

// SetDial replaces how the notifier's client connects, so that a test can serve its
// receivers in memory (net.Pipe) and run inside a synctest bubble, which cannot wait on
// real sockets. It also bypasses the dial-time SSRF guard (control): the guard is tested
// over real sockets in guard_test.go and the loopback tests of webhook_test.go.
func (n *Notifier) SetDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	n.client.Transport.(*http.Transport).DialContext = dial
}
