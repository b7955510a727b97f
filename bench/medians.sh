#!/usr/bin/env bash
# medians.sh: the median, over several runs, of each figure of each scenario
# in the report.json files the benchmark writes (one run per file).
#
#   bench/medians.sh run1/report.json run2/report.json run3/report.json
#
# Prints one row per scenario: the medians, and for the ratios the range
# (lowest–highest) over the runs. A run that did not drain a scenario is
# flagged "not drained" and its figures still count.
set -euo pipefail
(($# >= 1)) || { echo "usage: bench/medians.sh REPORT.json..." >&2; exit 2; }
command -v jq >/dev/null || { echo "medians.sh: needs jq" >&2; exit 2; }

jq -s -r '
	def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def r(n): if . == null then "-" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
	def span(f): [.[] | f] | "\(min | r(3))–\(max | r(3))";
	. as $runs
	| "runs: \($runs | length); db: \([$runs[].db] | unique | join(","));"
	  + " raw req/s per run: \([$runs[].raw.rps | r(0)] | join(", ")) (median \([$runs[].raw.rps] | median | r(0)))",
	  "machine: \($runs[0].machine.cpus) CPUs (\($runs[0].machine.cpu_model)), \($runs[0].machine.go)",
	  "",
	  (["scenario", "ingest/s", "×raw", "range", "deliv/s", "×raw", "range", "w/drain/s", "e2e p50", "p99", "p999", "pub p99", "drain s", "dup", "missing", "rss MB", "note"] | @tsv),
	  ([$runs[].scenarios[]] | group_by(.name) | sort_by(.[0].name as $n | ["single","rate","batch","fanout"] | index($n) // 99)[]
	   | . as $s
	   | [ $s[0].name,
	       ([$s[].ingest_ps] | median | r(0)), ([$s[].ingest_raw] | median | r(3)), ($s | span(.ingest_raw)),
	       ([$s[].deliver_ps] | median | r(0)), ([$s[].deliver_raw] | median | r(3)), ($s | span(.deliver_raw)),
	       ([$s[].deliver_drain_ps] | median | r(0)),
	       ([$s[].e2e.p50_ms] | median | r(1)), ([$s[].e2e.p99_ms] | median | r(1)), ([$s[].e2e.p999_ms] | median | r(1)),
	       ([$s[].publish_latency.p99_ms] | median | r(1)),
	       ([$s[].drain_s] | median | r(2)),
	       ([$s[].duplicates] | add), ([$s[].missing] | add),
	       ([$s[].server_rss_kb / 1024] | max | r(0)),
	       (if any($s[]; .drained | not) then "not drained in \([$s[] | select(.drained | not)] | length) run(s)" else "" end)
	     ] | @tsv)
' "$@" | {
	IFS= read -r l1; IFS= read -r l2; IFS= read -r _
	printf '%s\n%s\n\n' "$l1" "$l2"
	column -t -s $'\t'
}
