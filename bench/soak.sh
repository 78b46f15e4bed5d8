#!/usr/bin/env bash
# Soak test (not in CI): tlstap captures 1 000 concurrent TLS connections for 10 minutes while its
# resident memory is sampled. Reports the peak RSS (target < 200 MB) and the trend over the last
# 5 minutes (target: no growth, i.e. the fitted slope adds < 5 MB over those 5 minutes).
#
#   sudo bash bench/soak.sh            # after `bash scripts/setup.sh` (or npm run build)
#   SOAK_SECONDS=120 SOAK_CONNS=1000 SOAK_INTERVAL_MS=500 SOAK_SAMPLE_S=5 bash bench/soak.sh
#
# The load is dist/bench/soak-load.js: a TLS echo server and SOAK_CONNS clients in one node
# process named "tlstapsoak", each client sending 1 KiB every SOAK_INTERVAL_MS. tlstap runs with
# --comm tlstapsoak -f jsonl, its output thrown away. Samples go to bench/results/soak-<time>.csv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
seconds="${SOAK_SECONDS:-600}"
conns="${SOAK_CONNS:-1000}"
interval_ms="${SOAK_INTERVAL_MS:-500}"
sample_s="${SOAK_SAMPLE_S:-5}"

if [[ "$(id -u)" != 0 ]]; then
	echo "soak: run as root (tlstap needs CAP_BPF and CAP_PERFMON)" >&2
	exit 1
fi
for f in "$root/dist/src/cli.js" "$root/dist/bench/soak-load.js"; do
	[[ -f "$f" ]] || { echo "soak: $f is missing: run npm run build" >&2; exit 1; }
done
# Each connection takes two descriptors (client and server side) in the load process.
ulimit -n $((conns * 2 + 256))

mkdir -p "$here/results"
csv="$here/results/soak-$(date -u +%Y-%m-%dT%H-%M-%SZ).csv"
work="$(mktemp -d)"
tlstap_pid=""
load_pid=""
cleanup() {
	[[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null || true
	[[ -n "$tlstap_pid" ]] && kill -INT "$tlstap_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

node "$root/dist/src/cli.js" --comm tlstapsoak -f jsonl >/dev/null 2>"$work/tlstap.err" &
tlstap_pid=$!
for _ in $(seq 300); do
	grep -q 'capturing (' "$work/tlstap.err" && break
	kill -0 "$tlstap_pid" 2>/dev/null || { cat "$work/tlstap.err" >&2; exit 1; }
	sleep 0.1
done
grep -q 'capturing (' "$work/tlstap.err" || { echo "soak: tlstap did not attach" >&2; cat "$work/tlstap.err" >&2; exit 1; }
echo "soak: tlstap $tlstap_pid attached; starting $conns connections for $seconds s"

node "$root/dist/bench/soak-load.js" --conns "$conns" --interval-ms "$interval_ms" --seconds "$seconds" >"$work/load.out" 2>"$work/load.err" &
load_pid=$!
for _ in $(seq 1200); do
	grep -q '"ready"' "$work/load.out" && break
	kill -0 "$load_pid" 2>/dev/null || { cat "$work/load.err" >&2; exit 1; }
	sleep 0.1
done
echo "soak: load running ($(head -1 "$work/load.out"))"

# Sample tlstap's memory until the load ends: seconds since start, VmRSS, VmHWM, RssAnon (kB).
echo "t_s,rss_kb,hwm_kb,anon_kb" >"$csv"
start=$(date +%s)
while kill -0 "$load_pid" 2>/dev/null; do
	now=$(($(date +%s) - start))
	awk -v t="$now" '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^RssAnon:/{a=$2} END{printf "%d,%d,%d,%d\n", t, r, h, a}' \
		"/proc/$tlstap_pid/status" >>"$csv"
	sleep "$sample_s"
done
wait "$load_pid" || { echo "soak: the load failed" >&2; cat "$work/load.err" >&2; exit 1; }
load_pid=""
kill -INT "$tlstap_pid"
wait "$tlstap_pid" || true
tlstap_pid=""

echo "soak: load: $(tail -1 "$work/load.out")"
sed -n '/calls,/,$p' "$work/tlstap.err"
# Peak, and a least-squares slope of RSS over the last 5 minutes (or the last half of a shorter run).
awk -F, -v total="$seconds" '
	NR == 1 { next }
	{ t[NR] = $1; rss[NR] = $2; if ($3 > peak) peak = $3; if ($4 > anon) anon = $4; n = NR }
	END {
		from = total >= 600 ? total - 300 : total / 2
		for (i = 2; i <= n; i++) if (t[i] >= from) { k++; sx += t[i]; sy += rss[i]; sxx += t[i] * t[i]; sxy += t[i] * rss[i] }
		slope = k > 1 ? (k * sxy - sx * sy) / (k * sxx - sx * sx) : 0   # kB per second
		window = total - from
		growth_mb = slope * window / 1024
		printf "soak: peak RSS %.1f MB (heap and other anonymous memory %.1f MB) [target < 200 MB: %s]\n", peak / 1024, anon / 1024, peak / 1024 < 200 ? "met" : "MISSED"
		printf "soak: RSS trend over the last %d s: %+.3f MB/min, %+.1f MB over the window [target < 5 MB: %s]\n", window, slope * 60 / 1024, growth_mb, growth_mb < 5 ? "met" : "MISSED"
	}' "$csv"
echo "soak: samples in $csv"
