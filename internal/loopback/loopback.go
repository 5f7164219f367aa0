// Package loopback hands out loopback addresses for the appliances that tests and
// `clinicmsg bench` start as child processes.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// StartedBanner is what `clinicmsg serve` prints once it holds its port; a health answer
// seen before it may come from another process on the same address.
const StartedBanner = "Server started at"

// FreeAddr returns 127.0.0.1:port with a port that is free now and lies below the kernel's
// ephemeral range. An appliance keeps its address across restarts (it is its public URL),
// and a port from the ephemeral range can be handed to another test's loopback server while
// the appliance is down or still starting; that server would then answer in its place.
func FreeAddr() (string, error) {
	low := ephemeralLow()
	span := 12000
	if low-span < 1024 {
		span = low - 1024
	}
	for range 200 {
		port := low - 1 - rand.IntN(span)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr, nil
	}
	return "", errors.New("failed to find a free loopback port below the ephemeral range")
}

// ephemeralLow is the first port the kernel hands out for port 0 (Linux's default when the
// setting cannot be read).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(raw)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				return n
			}
		}
	}
	return 32768
}

// MustFreeAddr is FreeAddr for tests.
func MustFreeAddr(t interface{ Fatal(...any) }) string {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(fmt.Errorf("failed to pick an address for the appliance: %w", err))
	}
	return addr
}
