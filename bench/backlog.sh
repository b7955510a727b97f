#!/usr/bin/env bash
# backlog.sh: the "1,000,000 queued deliveries (receiver down)" measurement.
#
# It starts a server (SQLite in the output directory, or --db), creates a shop
# and one webhook whose URL is a closed loopback port (every attempt fails at
# once with "connection refused" and is rescheduled by the retry schedule),
# then:
#   1. measures API reads and single publishes on the empty server (baseline);
#   2. publishes N events (default 1,000,000) in batches (default 500) from a
#      few keep-alive clients, timing it, sampling the server's RSS each second;
#   3. waits HOLD seconds (the engine keeps attempting and rescheduling),
#      taking a CPU profile of the server meanwhile (cpu-hold.pprof);
#   4. measures the same reads and single publishes again, with the backlog;
#   5. reports the peak RSS (VmHWM), the publish time and rate, p50/p99 of
#      each read before and after, and saves a heap profile (heap.pprof,
#      heap.txt) and the goroutines at the end; summary.txt and report.json.
# Every loop is bounded; all traffic stays on 127.0.0.1.
#
# Usage:
#   go build -o /tmp/pw ./cmd/pancake-webhooks
#   bench/backlog.sh -b /tmp/pw                       # SQLite
#   bench/backlog.sh -b /tmp/pw -d 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=bench'
#
# Options:
#   -b BIN      server binary (default: pancake-webhooks on $PATH)
#   -d DB       --db of the server (default sqlite:OUT/backlog.db, removed at the end unless -k);
#               a PostgreSQL schema is left as it is: drop and recreate it between runs
#   -n N        events to publish (default 1000000)
#   -s SIZE     events per batch (default 500; the contract's maximum)
#   -c N        concurrent publishing clients (default 4)
#   -r N        requests per read measurement (default 200)
#   -R N        concurrent readers of the pending list, pages 1 to 10, each -r requests
#               (default 8; the peak RSS includes them)
#   -e BYTES    approximate size of each event's data (default 1024)
#   -H SECONDS  how long to hold the backlog before the second measurement (default 30)
#   -a ARGS     extra arguments for serve (e.g. "--workers 64")
#   -o DIR      output directory (default backlog-out)
#   -k          keep the SQLite database
# The server runs with --rate-limit 0 (the management rate limit would answer
# 429 to the read loops) and --max-body-bytes 1048576 (a batch of 500 1 KiB
# events is about 600 KB).
set -euo pipefail

BIN=$(command -v pancake-webhooks || true)
DB=""
N=1000000
BATCH=500
CLIENTS=4
READS=200
READERS=8
EBYTES=1024
HOLD=30
EXTRA=""
OUT=backlog-out
KEEP=0
while getopts "b:d:n:s:c:r:R:e:H:a:o:k" opt; do
	case $opt in
	b) BIN=$OPTARG ;;
	d) DB=$OPTARG ;;
	n) N=$OPTARG ;;
	s) BATCH=$OPTARG ;;
	c) CLIENTS=$OPTARG ;;
	r) READS=$OPTARG ;;
	R) READERS=$OPTARG ;;
	e) EBYTES=$OPTARG ;;
	H) HOLD=$OPTARG ;;
	a) EXTRA=$OPTARG ;;
	o) OUT=$OPTARG ;;
	k) KEEP=1 ;;
	*) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
	esac
done
[[ -n $BIN && -x $BIN ]] || { echo "backlog.sh: no server binary: give -b (go build -o /tmp/pw ./cmd/pancake-webhooks)" >&2; exit 2; }
for v in N BATCH CLIENTS READS READERS EBYTES HOLD; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "backlog.sh: -$v must be a number" >&2; exit 2; }
done
((BATCH >= 1 && BATCH <= 500 && CLIENTS >= 1 && CLIENTS <= 64 && READS >= 1 && READS <= 100000 && READERS >= 1 && READERS <= 64 && N >= BATCH && N <= 10000000 && HOLD <= 86400)) ||
	{ echo "backlog.sh: out of range (batch 1..500, clients 1..64, reads 1..100000, readers 1..64, N batch..10000000, hold ≤ 86400)" >&2; exit 2; }
command -v curl >/dev/null && command -v jq >/dev/null || { echo "backlog.sh: needs curl and jq" >&2; exit 2; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -z $DB ]]; then
	rm -f "$OUT"/backlog.db "$OUT"/backlog.db-wal "$OUT"/backlog.db-shm "$OUT"/backlog.db-server.lock
	DB="sqlite:$OUT/backlog.db"
	OWNDB=1
else
	OWNDB=0
fi
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
RPORT=1 # the receiver: a closed port on loopback
SHOP="backlog-$(date +%s)"

log() { printf 'backlog: %s\n' "$*" >&2; }
now() { date +%s.%N; }

# The receiver must be down: connecting must be refused.
if curl -s -o /dev/null -m 2 "http://127.0.0.1:$RPORT/"; then
	echo "backlog.sh: something listens on 127.0.0.1:$RPORT; the receiver must be down" >&2
	exit 1
fi

SPID=""
SAMPLER=""
cleanup() {
	[[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null || true
	if [[ -n $SPID ]] && kill -0 "$SPID" 2>/dev/null; then
		kill -TERM "$SPID" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SPID" 2>/dev/null || true
	fi
	if ((OWNDB && !KEEP)); then rm -f "$OUT"/backlog.db "$OUT"/backlog.db-wal "$OUT"/backlog.db-shm "$OUT"/backlog.db-server.lock; fi
}
trap cleanup EXIT

# shellcheck disable=SC2086
"$BIN" serve --addr 127.0.0.1:0 --debug-addr 127.0.0.1:0 --db "$DB" --admin-token "$TOKEN" \
	--allow-private-networks --allow-http --rate-limit 0 --max-body-bytes 1048576 --log-format json \
	$EXTRA >"$OUT/server.log" 2>&1 &
SPID=$!
ADDR="" DEBUG=""
for _ in $(seq 1 600); do
	ADDR=$(jq -r 'select(.msg=="serving") | .addr' "$OUT/server.log" 2>/dev/null | head -1 || true)
	DEBUG=$(jq -r 'select(.msg=="serving pprof") | .addr' "$OUT/server.log" 2>/dev/null | head -1 || true)
	[[ -n $ADDR ]] && break
	kill -0 "$SPID" 2>/dev/null || { echo "backlog.sh: the server exited; see $OUT/server.log" >&2; exit 1; }
	sleep 0.1
done
[[ -n $ADDR ]] || { echo "backlog.sh: the server did not start within 60 s; see $OUT/server.log" >&2; exit 1; }
BASE="http://$ADDR"
log "server pid $SPID on $ADDR (pprof ${DEBUG:-off}), db ${DB%%:*}, output $OUT"

# The shop and its webhook on the closed port.
KEY=$(curl -sf -m 30 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d "{\"shop_id\":\"$SHOP\"}" "$BASE/api/v1/admin/shops" | jq -r .api_key)
HOOK=$(curl -sf -m 30 -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
	-d "{\"url\":\"http://127.0.0.1:$RPORT/hook\",\"events\":[\"order.created\"]}" \
	"$BASE/api/v1/shops/$SHOP/webhooks" | jq -r .id)
[[ -n $KEY && $KEY != null && -n $HOOK && $HOOK != null ]] || { echo "backlog.sh: could not create the shop or webhook" >&2; exit 1; }
API="$BASE/api/v1/shops/$SHOP"

# Bodies: one event, and one batch of BATCH events, each with ~EBYTES of data.
PAD=$(head -c "$EBYTES" /dev/zero | tr '\0' 'x')
EVENT="{\"event\":\"order.created\",\"data\":{\"order_id\":\"ord_1\",\"status\":\"new\",\"total_price\":325000,\"note\":\"${PAD:0:$((EBYTES > 80 ? EBYTES - 80 : 0))}\"}}"
printf '%s' "$EVENT" >"$OUT/event.json"
{
	printf '{"events":['
	for ((i = 0; i < BATCH; i++)); do
		((i > 0)) && printf ','
		printf '%s' "$EVENT"
	done
	printf ']}'
} >"$OUT/batch.json"

rss() { awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "%d %d\n", r, h}' "/proc/$SPID/status"; }

# pct P: the P-th percentile (nearest rank) of the sorted numbers on stdin.
pct() { awk -v p="$1" '{ t[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.2f\n", t[i] }'; }

# measure NAME METHOD URL [BODY]: READS sequential keep-alive requests from
# one curl; prints "NAME n p50_ms p99_ms max_ms bad" (bad: not 200, or not
# 202 for a POST).
measure() {
	local name=$1 method=$2 url=$3 body=${4:-} cfg="$OUT/curl-$1.cfg" res="$OUT/times-$1.txt" want=200
	: >"$cfg"
	for ((i = 0; i < READS; i++)); do
		printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$cfg"
	done
	local extra=(-X "$method")
	[[ -n $body ]] && { extra+=(-H 'Content-Type: application/json' --data-binary "@$body"); want=202; }
	curl -s -m 600 -K "$cfg" "${extra[@]}" -H "Authorization: Bearer $KEY" -w '%{http_code} %{time_total}\n' >"$res" 2>/dev/null || true
	local n bad sorted
	n=$(wc -l <"$res")
	bad=$(awk -v w="$want" '$1 != w { b++ } END { print b + 0 }' "$res")
	sorted=$(awk '{ printf "%.3f\n", $2 * 1000 }' "$res" | sort -n)
	echo "$name $n $(pct 50 <<<"$sorted") $(pct 99 <<<"$sorted") $(pct 100 <<<"$sorted") $bad"
}

# concurrent_pending: READERS clients at once, each READS keep-alive
# requests of the pending list, pages 1 to 10 in turn; one line as measure.
concurrent_pending() {
	local c i cfg pids=() name="pending_x$READERS"
	for ((c = 0; c < READERS; c++)); do
		cfg="$OUT/curl-pending-$c.cfg"
		: >"$cfg"
		for ((i = 0; i < READS; i++)); do
			printf 'url = "%s"\noutput = "/dev/null"\n' "$API/webhook-deliveries/pending?page_size=20&page_number=$((i % 10 + 1))" >>"$cfg"
		done
		curl -s -m 600 -K "$cfg" -H "Authorization: Bearer $KEY" -w '%{http_code} %{time_total}\n' >"$OUT/times-pending-$c.txt" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}" || true
	local all n bad sorted
	all=$(cat "$OUT"/times-pending-*.txt)
	n=$(wc -l <<<"$all")
	bad=$(awk '$1 != 200 { b++ } END { print b + 0 }' <<<"$all")
	sorted=$(awk '{ printf "%.3f\n", $2 * 1000 }' <<<"$all" | sort -n)
	echo "$name $n $(pct 50 <<<"$sorted") $(pct 99 <<<"$sorted") $(pct 100 <<<"$sorted") $bad"
}

reads() { # label
	local label=$1
	{
		measure list GET "$API/webhook-deliveries?page_size=20"
		measure list_filtered GET "$API/webhook-deliveries?webhook_id=$HOOK&status=failed&page_size=20"
		measure pending GET "$API/webhook-deliveries/pending?page_size=20"
		concurrent_pending
		measure stats GET "$API/webhooks/$HOOK/stats"
		measure webhook GET "$API/webhooks/$HOOK"
		measure publish POST "$API/events" "$OUT/event.json"
	} | sed "s/^/$label /"
}

pending_count() { curl -sf -m 120 -H "Authorization: Bearer $KEY" "$API/webhook-deliveries/pending?page_size=1" | jq -r .total_count; }

log "baseline reads on the empty server ($READS requests each)"
reads empty >"$OUT/reads.txt"
read -r _ HWM0 < <(rss)

# RSS sampler: one line a second, "seconds rss_kb hwm_kb", while the server lives.
T0=$(now)
(
	for _ in $(seq 1 86400); do
		kill -0 "$SPID" 2>/dev/null || exit 0
		printf '%.1f %s\n' "$(echo "$(now) - $T0" | bc)" "$(rss)"
		sleep 1
	done
) >"$OUT/rss.txt" &
SAMPLER=$!

REQS=$((N / BATCH))
log "publishing $((REQS * BATCH)) events: $REQS batches of $BATCH from $CLIENTS clients"
per=$(((REQS + CLIENTS - 1) / CLIENTS))
left=$REQS
P0=$(now)
PUBPIDS=()
for ((c = 0; c < CLIENTS && left > 0; c++)); do
	k=$((left < per ? left : per))
	left=$((left - k))
	cfg="$OUT/curl-publish-$c.cfg"
	: >"$cfg"
	for ((i = 0; i < k; i++)); do
		printf 'url = "%s"\noutput = "/dev/null"\n' "$API/events/batch" >>"$cfg"
	done
	curl -s -m 86400 -K "$cfg" -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $KEY" \
		--data-binary "@$OUT/batch.json" -w '%{http_code} %{time_total}\n' >"$OUT/publish-$c.txt" 2>/dev/null &
	PUBPIDS+=($!)
done
wait "${PUBPIDS[@]}" || true
P1=$(now)
PUB_S=$(printf '%.2f' "$(echo "$P1 - $P0" | bc)")
cat "$OUT"/publish-*.txt >"$OUT/publish.txt"
ACCEPTED=$(awk -v b="$BATCH" '$1 == 202 { n += b } END { print n + 0 }' "$OUT/publish.txt")
FAILED=$(awk '$1 != 202 { n++ } END { print n + 0 }' "$OUT/publish.txt")
sorted=$(awk '$1 == 202 { printf "%.3f\n", $2 * 1000 }' "$OUT/publish.txt" | sort -n)
BATCH_LAT="$(pct 50 <<<"$sorted") $(pct 99 <<<"$sorted")"
# Does publishing slow down as the queue grows? p50 of each client's first
# and last tenth of its batches.
tenth() { # first|last
	for f in "$OUT"/publish-*.txt; do
		awk -v w="$1" '{ t[NR] = $2 } END { k = int(NR / 10); if (k < 1) k = 1
			for (i = 1; i <= NR; i++) if ((w == "first" && i <= k) || (w == "last" && i > NR - k)) printf "%.3f\n", t[i] * 1000 }' "$f"
	done | sort -n | pct 50
}
BATCH_TREND="$(tenth first) $(tenth last)"
read -r _ HWM1 < <(rss)
log "published $ACCEPTED events in ${PUB_S}s ($FAILED batches failed); peak RSS so far $((HWM1 / 1024)) MiB"

log "holding the backlog for ${HOLD}s"
H0=$(now)
if [[ -n $DEBUG ]] && ((HOLD >= 5)); then
	# A CPU profile of the server holding the backlog (at most 30 s of the hold).
	PS=$((HOLD < 30 ? HOLD : 30))
	curl -sf -m $((PS + 30)) -o "$OUT/cpu-hold.pprof" "http://$DEBUG/debug/pprof/profile?seconds=$PS" || true
fi
rest=$(echo "$HOLD - ($(now) - $H0)" | bc)
[[ $rest == -* ]] || sleep "$rest"
PENDING=$(pending_count)
log "pending deliveries now: $PENDING; reads with the backlog ($READS requests each)"
reads backlog >>"$OUT/reads.txt"
PENDING2=$(pending_count)
STATS=$(curl -sf -m 60 -H "Authorization: Bearer $KEY" "$API/webhooks/$HOOK/stats" || echo '{}')
read -r RSS2 HWM2 < <(rss)
ANON=$(awk '/^RssAnon:/{print $2}' "/proc/$SPID/status")
FILE=$(awk '/^RssFile:/{print $2}' "/proc/$SPID/status")
if [[ -n $DEBUG ]]; then
	curl -sf -m 60 -o "$OUT/heap.pprof" "http://$DEBUG/debug/pprof/heap" || true
	curl -sf -m 60 -o "$OUT/heap.txt" "http://$DEBUG/debug/pprof/heap?debug=1" || true
	curl -sf -m 60 -o "$OUT/goroutines.txt" "http://$DEBUG/debug/pprof/goroutine?debug=1" || true
fi
DBSIZE=""
if ((OWNDB)); then DBSIZE=$(du -cb "$OUT"/backlog.db* | tail -1 | cut -f1); fi

{
	echo
	echo "backlog: $ACCEPTED events published in ${PUB_S}s ($(echo "scale=0; $ACCEPTED / $PUB_S" | bc) events/s), $FAILED batches failed; batch→202 p50/p99 ${BATCH_LAT// / \/ } ms; p50 of the first tenth of the batches ${BATCH_TREND%% *} ms, of the last tenth ${BATCH_TREND##* } ms"
	echo "queued: $PENDING pending before the second reads, $PENDING2 after (receiver down: 127.0.0.1:$RPORT refuses)"
	echo "server RSS: peak (VmHWM) $((HWM2 / 1024)) MiB; $((HWM0 / 1024)) MiB peak before publishing, $((HWM1 / 1024)) MiB peak when published, $((RSS2 / 1024)) MiB now"
	echo "  of which anonymous $((ANON / 1024)) MiB, file-backed $((FILE / 1024)) MiB$(
		[[ -s $OUT/heap.txt ]] && awk -v anon="$ANON" '/^# Sys =/{s=$4} /^# HeapAlloc =/{h=$4} END{printf "; the Go runtime holds %d MiB from the OS (heap in use %d MiB)", s/1048576, h/1048576; if (anon * 1024 > s + 16 * 1048576) printf ": about %d MiB of anonymous memory is outside the Go runtime (cgo, or the SQLite driver'"'"'s own allocator: its page caches)", (anon * 1024 - s) / 1048576}' "$OUT/heap.txt")"
	[[ -n $DBSIZE ]] && echo "database files: $((DBSIZE / 1048576)) MiB"
	echo "webhook stats: $(echo "$STATS" | jq -c . 2>/dev/null || echo "$STATS")"
	echo
	printf '%-14s %9s %8s %8s %9s %8s %8s %7s\n' read "empty p50" "p99" "max" "queue p50" "p99" "max" "non-2xx"
	awk '$1 == "empty" { e[$2] = $4 " " $5 " " $6; eb[$2] = $7 } $1 == "backlog" { b[$2] = $4 " " $5 " " $6; bb[$2] = $7; o[++n] = $2 }
		END { for (i = 1; i <= n; i++) { k = o[i]; split(e[k], x, " "); split(b[k], y, " ");
			printf "%-14s %9s %8s %8s %9s %8s %8s %7d\n", k, x[1], x[2], x[3], y[1], y[2], y[3], eb[k] + bb[k] } }' "$OUT/reads.txt"
	echo "(ms; $READS sequential keep-alive requests each; publish = single POST /events → 202)"
} | tee "$OUT/summary.txt"

# One JSON line.
jq -cn --arg db "${DB%%:*}" --argjson n "$ACCEPTED" --argjson failed "$FAILED" --arg pub_s "$PUB_S" \
	--argjson pending "${PENDING:-null}" --argjson hwm "$HWM2" --argjson hwm_pub "$HWM1" --argjson rss "$RSS2" --argjson anon "${ANON:-null}" \
	--arg reads "$(cat "$OUT/reads.txt")" --argjson stats "${STATS:-null}" --arg batchlat "$BATCH_LAT" --arg trend "$BATCH_TREND" '
	{tool: "backlog.sh", db: $db, accepted: $n, failed_batches: $failed, publish_s: ($pub_s | tonumber),
	 ingest_ps: (($n / ($pub_s | tonumber)) | floor), batch_latency_ms: ($batchlat | split(" ") | map(tonumber)), batch_p50_first_last_tenth_ms: ($trend | split(" ") | map(tonumber)),
	 pending: $pending, peak_rss_kb: $hwm, peak_rss_kb_published: $hwm_pub, rss_kb: $rss, rss_anon_kb: $anon, webhook_stats: $stats,
	 reads: ($reads | split("\n") | map(select(length > 0) | split(" ") |
	   {when: .[0], read: .[1], n: (.[2] | tonumber), p50_ms: (.[3] | tonumber), p99_ms: (.[4] | tonumber), max_ms: (.[5] | tonumber), bad: (.[6] | tonumber)}))}' |
	tee "$OUT/report.json"
