package main_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
)

// TestBenchHelp checks that the bench subcommand is wired in with the
// benchmark's flags.
func TestBenchHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := pw.Run(context.Background(), []string{"bench", "--help"}, &stdout, &stderr)
	if code != pw.ExitOK {
		t.Fatalf("bench --help: exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"pancake-webhooks bench", "--server-bin", "--duration", "--scenarios", "--db", "--target", "this pancake-webhooks binary"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench --help does not mention %q:\n%s", want, out)
		}
	}
}

// TestBenchBadFlag checks that a bad value is a usage error, and that an
// invalid setting is one too (exit 2, as serve's), refused before anything
// is started.
func TestBenchBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := pw.Run(context.Background(), []string{"bench", "--duration", "soon"}, &stdout, &stderr); code != pw.ExitUsage {
		t.Errorf("bench --duration soon: exit %d, want %d; stderr %q", code, pw.ExitUsage, stderr.String())
	}
	stderr.Reset()
	args := []string{"bench", "--target", "http://192.0.2.1:8080", "--admin-token", "x", "--out", t.TempDir()}
	if code := pw.Run(context.Background(), args, &stdout, &stderr); code != pw.ExitUsage || !strings.Contains(stderr.String(), "loopback") {
		t.Errorf("bench --target off loopback: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	args = []string{"bench", "--relay", "--db", "sqlite:/tmp/x.db", "--out", t.TempDir()}
	if code := pw.Run(context.Background(), args, &stdout, &stderr); code != pw.ExitUsage || !strings.Contains(stderr.String(), "--relay") {
		t.Errorf("bench --relay --db: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := pw.Run(context.Background(), []string{"bench", "relay", "--addr", "0.0.0.0:0"}, &stdout, &stderr); code == pw.ExitOK || !strings.Contains(stderr.String(), "loopback") {
		t.Errorf("bench relay off loopback: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := pw.Run(context.Background(), []string{"bench", "relay", "--queue", "0"}, &stdout, &stderr); code != pw.ExitUsage {
		t.Errorf("bench relay --queue 0: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	args = []string{"bench", "--relay-journal", "--out", t.TempDir()}
	if code := pw.Run(context.Background(), args, &stdout, &stderr); code != pw.ExitUsage || !strings.Contains(stderr.String(), "needs --relay") {
		t.Errorf("bench --relay-journal alone: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	taken := filepath.Join(t.TempDir(), "journal.log")
	if err := os.WriteFile(taken, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args = []string{"bench", "relay", "--addr", "127.0.0.1:0", "--journal", taken}
	if code := pw.Run(context.Background(), args, &stdout, &stderr); code == pw.ExitOK || !strings.Contains(stderr.String(), "journal") {
		t.Errorf("bench relay --journal over a file: exit %d, stderr %q", code, stderr.String())
	}
	if b, _ := os.ReadFile(taken); string(b) != "kept\n" {
		t.Errorf("the existing file was changed: %q", b)
	}
}

// TestBenchIgnoresEnv checks that PANCAKE_* variables do not reach the
// benchmark's flags: a bad PANCAKE_DURATION would be a usage error, and a
// PANCAKE_TARGET off loopback would be refused.
func TestBenchIgnoresEnv(t *testing.T) {
	t.Setenv("PANCAKE_DURATION", "not-a-duration")
	t.Setenv("PANCAKE_TARGET", "http://192.0.2.1:8080")
	t.Setenv("PANCAKE_DB", "sqlite:/nonexistent/x.db")
	var stdout, stderr bytes.Buffer
	// Nothing listens on port 1: the run ends when the target is not ready.
	args := []string{"bench", "--target", "http://127.0.0.1:1", "--admin-token", "x",
		"--ready-timeout", "200ms", "--raw-duration", "0", "--out", t.TempDir()}
	code := pw.Run(context.Background(), args, &stdout, &stderr)
	if code != pw.ExitError || !strings.Contains(stderr.String(), "not ready") {
		t.Errorf("bench with PANCAKE_* set: exit %d, stderr %q; want exit 1, target not ready", code, stderr.String())
	}
}
