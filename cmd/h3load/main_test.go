package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestCPUTime(t *testing.T) {
	// Burn CPU until the kernel's tick-grained count moves (bounded, for a
	// loaded machine where the process may wait for a core).
	var d time.Duration
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for x := 0; x < 1e6; x++ {
		}
		if d, err = cpuTime(os.Getpid()); err != nil || d > 0 {
			break
		}
	}
	if err != nil || d <= 0 {
		t.Fatalf("cpuTime(self) = %v, %v; want a positive duration", d, err)
	}
	if d, err := cpuTime(0); d != 0 || err != nil {
		t.Errorf("cpuTime(0) = %v, %v; want 0, nil", d, err)
	}
	if _, err := cpuTime(1 << 30); err == nil {
		t.Error("cpuTime of a pid that does not exist succeeded")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-url", "https://localhost:8443/small", "-c", "2", "-m", "3", "-d", "1s"})
	if err != nil || o.conns != 2 || o.streams != 3 || o.duration != time.Second || o.sni != "localhost" {
		t.Fatalf("parseFlags: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"-url", "http://localhost:8443/"},
		{"-url", "https:///x"},
		{"-url", "https://localhost/", "-c", "0"},
		{"-url", "https://localhost/", "-d", "0s"},
	} {
		if _, err := parseFlags(args); err == nil || !strings.Contains(err.Error(), "-") {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
}
