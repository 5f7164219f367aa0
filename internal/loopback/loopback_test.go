package loopback

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrIsBelowTheEphemeralRange: the port is free now and can never be handed out
// for a port-0 listener, which is what keeps other tests' servers off it.
func TestFreeAddrIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		if host != "127.0.0.1" || n >= low || n < 1024 {
			t.Fatalf("expected 127.0.0.1 and a port in [1024, %d), got %s", low, addr)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the address must be free: %v", err)
		}
		l.Close()
	}
}
