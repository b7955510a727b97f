package bench

import (
	"os"
	"testing"
)

func TestParseProc(t *testing.T) {
	status := []byte("Name:\tpancake\nVmPeak:\t  900000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t   100000 kB\n")
	if rss, hwm := parseStatus(status); rss != 100000 || hwm != 123456 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	// The command name may hold spaces and parentheses.
	stat := []byte("4242 (pancake (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 125 0 0 20 0 9 0 100 0 0")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3.75 {
		t.Errorf("cpu %v, %v; want 3.75", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Errorf("short stat accepted")
	}
}

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	st, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSSKB <= 0 || st.PeakRSSKB < st.RSSKB {
		t.Errorf("%+v", st)
	}
}
