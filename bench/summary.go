package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// printSummary writes the human summary of a run.
func printSummary(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "pancake-bench %s  %s/%s, %d CPUs (%s), %s\n", rep.StartedAt, m.OS, m.Arch, m.CPUs, m.CPUModel, m.Go)
	fmt.Fprintf(w, "server: %s mode, db %s; %d B events; %v per scenario",
		rep.Mode, rep.DB, rep.Settings.EventBytes, fmtSeconds(rep.Settings.DurationS))
	switch {
	case rep.Mode == "relay" && rep.DB == "journal":
		fmt.Fprint(w, " (a relay that only journals each event, fsynced before the 202: the machine's limit for a durable server, not the server's)")
	case rep.Mode == "relay":
		fmt.Fprint(w, " (a relay that stores nothing: the machine's limit, not the server's)")
	}
	if d := rep.Settings.ReceiverDelayMS; d > 0 {
		fmt.Fprintf(w, "; the receiver answers each delivery after %g ms", d)
	}
	fmt.Fprintln(w)
	samples := make([]string, len(rep.Raw.Samples))
	for i, s := range rep.Raw.Samples {
		samples[i] = fmt.Sprintf("%.0f", s)
	}
	if len(samples) > 0 {
		fmt.Fprintf(w, "raw HTTP POST to the sink, %d keep-alive clients: %s req/s; raw = %.0f req/s (median)\n\n",
			rep.Raw.Clients, strings.Join(samples, " then "), rep.Raw.RPS)
	} else {
		fmt.Fprintf(w, "raw HTTP rate not measured: no ratios\n\n")
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tevents\tingest/s\t×raw\tdeliv/s\t×raw\tw/drain/s\tp50 ms\tp99 ms\tp999 ms\tdrain s\tdup\tmissing\terrors\tsrv cpu s\t")
	for _, s := range rep.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.0f\t%.3f\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%d\t%d\t%d\t%.1f\t\n",
			s.Name, s.Accepted, s.IngestPS, s.IngestRaw, s.DeliverPS, s.DeliverRaw, s.DeliverDrain,
			s.E2E.P50ms, s.E2E.P99ms, s.E2E.P999ms, s.DrainS, s.Duplicates, s.Missing, sumErrors(s.Errors), s.ServerCPU)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, s := range rep.Scenarios {
		fmt.Fprintf(w, "%s: %s; publish→202 p50 %.1f ms p99 %.1f ms", s.Name, s.Description, s.PublishLat.P50ms, s.PublishLat.P99ms)
		if s.Rate > 0 {
			fmt.Fprintf(w, "; worst send lag %.1f ms", s.ScheduleLagMs)
		}
		if !s.Drained {
			fmt.Fprintf(w, "; NOT DRAINED: %d of %d deliveries still missing after the %gs drain timeout", s.Missing, s.Expected, rep.Settings.DrainTimeout)
		}
		var notes []string
		if len(s.Errors) > 0 {
			notes = append(notes, "errors "+fmtErrors(s.Errors))
		}
		if s.BadSignatures > 0 {
			notes = append(notes, fmt.Sprintf("%d bad signatures", s.BadSignatures))
		}
		if s.Unexpected > 0 {
			notes = append(notes, fmt.Sprintf("%d unexpected deliveries", s.Unexpected))
		}
		if s.Mismatch > 0 {
			notes = append(notes, fmt.Sprintf("%d answers with deliveries ≠ %d", s.Mismatch, s.Webhooks))
		}
		if s.NoTimestamp > 0 {
			notes = append(notes, fmt.Sprintf("%d arrivals without the publish time", s.NoTimestamp))
		}
		if s.Err != "" {
			notes = append(notes, "error: "+s.Err)
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "; %s", strings.Join(notes, "; "))
		}
		fmt.Fprintln(w)
	}
	if rep.Server != nil {
		fmt.Fprintf(w, "server: peak RSS %.1f MB, CPU %.1f s", float64(rep.Server.PeakRSSKB)/1024, rep.Server.CPUSeconds)
	} else {
		fmt.Fprintf(w, "server: RSS and CPU unknown (give --server-pid)")
	}
	fmt.Fprintf(w, "; bench tool CPU %.1f s; wall %.1f s", rep.BenchCPU, rep.WallSeconds)
	if rep.Stray > 0 {
		fmt.Fprintf(w, "; %d stray arrivals", rep.Stray)
	}
	fmt.Fprintln(w)
	if len(rep.Scenarios) > 0 && len(rep.Scenarios[0].Charts) > 0 {
		fmt.Fprintf(w, "charts: %s\n", strings.Join(allCharts(rep), " "))
	}
	if rep.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", rep.Error)
	}
}

func allCharts(rep *Report) []string {
	var out []string
	for _, s := range rep.Scenarios {
		out = append(out, s.Charts...)
	}
	return out
}

func sumErrors(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtErrors(m map[string]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func fmtSeconds(s float64) string { return fmt.Sprintf("%gs", s) }
