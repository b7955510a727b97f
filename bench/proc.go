package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcStats is what /proc says about a process (Linux; zero elsewhere).
type ProcStats struct {
	RSSKB      int64   `json:"rss_kb"`      // VmRSS now
	PeakRSSKB  int64   `json:"peak_rss_kb"` // VmHWM, the peak resident set
	CPUSeconds float64 `json:"cpu_s"`       // utime + stime
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ, which
// is 100 on every Linux architecture Go supports.
const userHZ = 100

// ReadProc reads the memory and CPU figures of process pid from /proc.
func ReadProc(pid int) (ProcStats, error) {
	var st ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	st.RSSKB, st.PeakRSSKB = parseStatus(status)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	st.CPUSeconds, err = parseStatCPU(stat)
	return st, err
}

// parseStatus returns VmRSS and VmHWM (kB) from /proc/<pid>/status.
func parseStatus(b []byte) (rss, hwm int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// parseStatCPU returns utime+stime in seconds from /proc/<pid>/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from after its last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat times")
	}
	return float64(ut+stime) / userHZ, nil
}

// server is the process under test: a child we started, or a running one.
type server struct {
	base  string // http://127.0.0.1:port
	admin string
	pid   int // 0: unknown
	cmd   *exec.Cmd
	done  chan struct{} // closed when the child has exited
	err   error         // the child's exit status, after done
	log   *os.File
	tmp   string // temporary directory to remove, or ""
	kind  string // database kind for the report
	final ProcStats
}

// findServerBin returns flagValue, else pancake-webhooks next to the running
// executable, else pancake-webhooks from $PATH.
func findServerBin(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	const name = "pancake-webhooks"
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("no server binary: give --server-bin (e.g. go build -o /tmp/pw ./cmd/pancake-webhooks), put %s next to this tool or on $PATH, or use --target", name)
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func dbKind(db string) string {
	scheme, _, ok := strings.Cut(db, ":")
	if !ok {
		return "unknown"
	}
	switch scheme {
	case "postgres", "postgresql":
		return "postgres"
	}
	return scheme
}

// startServer starts the server binary as a child with its output in
// outDir/server.log and waits until GET /readyz answers 200.
func startServer(ctx context.Context, cfg *Config, logf func(string, ...any)) (*server, error) {
	bin, err := findServerBin(cfg.ServerBin)
	if err != nil {
		return nil, err
	}
	s := &server{admin: randomHex(16), done: make(chan struct{})}
	// The temporary directory holds the default SQLite database, or the
	// relay's journal.
	db := cfg.DB
	if (db == "" && !cfg.Relay) || cfg.RelayJournal {
		s.tmp, err = os.MkdirTemp("", "pancake-bench-")
		if err != nil {
			return nil, err
		}
	}
	switch {
	case cfg.RelayJournal:
		s.kind = "journal"
	case cfg.Relay:
		s.kind = "none"
	default:
		if db == "" {
			db = "sqlite:" + filepath.Join(s.tmp, "bench.db")
		}
		s.kind = dbKind(db)
	}
	port, err := freePort()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.base = "http://" + addr
	args := []string{"bench", "relay", "--addr", addr}
	if cfg.RelayJournal {
		args = append(args, "--journal", filepath.Join(s.tmp, "journal.log"))
	}
	if !cfg.Relay {
		args = append([]string{"serve", "--addr", addr, "--db", db, "--admin-token", s.admin,
			"--allow-private-networks", "--allow-http"}, strings.Fields(cfg.ServerArgs)...)
	}
	s.log, err = os.Create(filepath.Join(cfg.Out, "server.log"))
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.pid = s.cmd.Process.Pid
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	logf("started %s (pid %d) on %s, db %s, log %s", bin, s.pid, addr, s.kind, s.log.Name())
	if err := waitReady(ctx, s.base, cfg.ReadyTimeout, s.done); err != nil {
		s.stop(logf)
		return nil, fmt.Errorf("%w (see %s)", err, s.log.Name())
	}
	return s, nil
}

// waitReady polls GET base/readyz until 200, the timeout, or exited closing.
func waitReady(ctx context.Context, base string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: newTransport(2)}
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the server exited before it was ready")
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("the server was not ready (GET /readyz 200) within %v", timeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stats reads the server's figures now; zero when the pid is unknown.
func (s *server) stats() ProcStats {
	if s.pid <= 0 {
		return ProcStats{}
	}
	st, _ := ReadProc(s.pid)
	return st
}

// stop records the final figures, then ends a child we started: SIGTERM,
// then SIGKILL after 10 s.
func (s *server) stop(logf func(string, ...any)) {
	s.final = s.stats()
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				logf("the server did not stop within 10 s of SIGTERM: killing it")
				_ = s.cmd.Process.Kill()
				select {
				case <-s.done:
				case <-time.After(5 * time.Second):
				}
			}
		}
	}
	s.cleanup()
}

func (s *server) cleanup() {
	if s.log != nil {
		_ = s.log.Close()
	}
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}
