#!/usr/bin/env bash
# Cross-checks commerce-load against an independent generator, h2load (Debian's
# nghttp2-client), on the same commerce-server, one after the other, twice each:
#   1. a fixed rate (default 100 requests/s) of GetCart over one connection;
#   2. a closed loop: one request at a time, back to back, for the same time.
# It prints each one's throughput and latency percentiles.
#
#   load/cross-check.sh [RATE] [SECONDS] [ROUNDS]   (defaults: 100 requests/s, 10 s, 5 rounds)
#
# At the end it prints, for each pair of runs, commerce-load's median and throughput as a
# ratio to h2load's. h2load times a request from its own send (the moment it hands the request
# to nghttp2) to the answer; commerce-load's like-for-like figure is its time "from the send"
# (the write that carried the request to the read that carried its answer). Its headline,
# measured from the due time, also counts how late the generator woke for each request: that
# ratio is printed too, and the generator's report gives the send lag it is made of.
#
# h2load has no gRPC support of its own; a gRPC unary call is an HTTP/2 POST with a
# length-prefixed message body and two headers, which h2load can send: the body here is the
# 5-byte frame of an empty GetCartRequest (flag 0, length 0). It does not read gRPC's status
# trailer: the server's /metrics (grpc_server_handled_total) says whether the calls succeeded.
# Its summary has no percentiles: they come from its per-request log (--log-file: start time,
# status, microseconds). Keep RATE at 100 or below: h2load's --rps is per client and, above
# about 100 per client, it sends in bursts every 10 ms (measured: at -c 4 --rps 250, 90% of the
# gaps between requests were under 0.5 ms), which changes what the server sees.
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-100}"
seconds="${2:-10}"
rounds="${3:-5}"
for arg in "$rate" "$seconds" "$rounds"; do
  [[ "$arg" =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: load/cross-check.sh [RATE] [SECONDS] [ROUNDS] (positive whole numbers; got '$arg')" >&2
    exit 2
  }
done
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 2; }

work="$(mktemp -d)"
bin="${CARGO_TARGET_DIR:-target}/release/commerce-load"
mkfifo "$work/stdin"
# Closing our end of the fifo is what stops the server (`serve` stops when its stdin closes).
cleanup() { exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The server, its data and identities.
cargo xtask load serve <"$work/stdin" >"$work/serve.out" 2>"$work/serve.err" &
exec 3>"$work/stdin"
for _ in $(seq 1 900); do grep -q "is serving" "$work/serve.out" 2>/dev/null && break; sleep 1; done
grep -q "is serving" "$work/serve.out" || { cat "$work/serve.err" >&2; exit 2; }
addr="$(awk '/gRPC:/ {print $2}' "$work/serve.out")"
ids="target/load/identities.json"
# One customer for both tools (h2load sends one set of headers).
python3 - "$ids" "$work/one.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); t = d["tenants"][0]; t["users"] = t["users"][:1]
json.dump({"tenants": [t]}, open(sys.argv[2], "w"))
PY
tenant="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenants"][0]["id"])' "$work/one.json")"
user="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenants"][0]["users"][0])' "$work/one.json")"
printf '\x00\x00\x00\x00\x00' >"$work/get_cart.bin"
cat >"$work/closed.toml" <<TOML
[profiles.closed]
description = "one request at a time, back to back"
warmup = "3s"
[[profiles.closed.scenarios]]
name = "get_cart"
executor = "constant-vus"
vus = 1
duration = "${seconds}s"
mix = { get_cart = 1 }
TOML
echo "server on $addr; GetCart, ${seconds}s per run"

h2() { # $1: extra h2load arguments
  rm -f "$work/h2load.log"
  # shellcheck disable=SC2086
  h2load -c 1 -m 1 $1 -D "$seconds" --warm-up-time 3 -d "$work/get_cart.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "x-tenant-id: $tenant" -H "x-user-id: $user" -H 'x-roles: customer' \
    --log-file "$work/h2load.log" "http://$addr/commerce.v1.CartService/GetCart" >"$work/h2load.out"
  python3 - "$work/h2load.log" "$seconds" "$2" "$work/results.tsv" <<'PY'
import sys
lat = sorted(int(line.split("\t")[2]) for line in open(sys.argv[1]) if line.strip())
n = len(lat)
q = lambda p: lat[min(n - 1, int(n * p))] / 1000
print(f"  h2load        {sys.argv[3]:<12} {n / float(sys.argv[2]):8.1f}/s  p50 {q(0.5):.3f} ms  p90 {q(0.9):.3f} ms  p99 {q(0.99):.3f} ms")
with open(sys.argv[4], "a") as out:
    out.write(f"h2load\t{sys.argv[3]}\t{n / float(sys.argv[2])}\t{q(0.5)}\t{q(0.5)}\n")
PY
}
cl() { # $1: profile arguments
  rm -f "$work/cl.json"
  # Exit 1 (a threshold failed) still has a report to read; 2 has none.
  # shellcheck disable=SC2086
  "$bin" $1 --target "$addr" --identities "$work/one.json" --connections 1 \
    --warmup 3s --progress 0 --json "$work/cl.json" --html "$work/cl.html" >"$work/cl.out" 2>&1 || true
  [ -s "$work/cl.json" ] || { cat "$work/cl.out" >&2; exit 2; }
  python3 - "$work/cl.json" "$2" "$work/results.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  commerce-load {sys.argv[2]:<12} {r['rps']:8.1f}/s  p50 {r['p50'] / 1e6:.3f} ms  p90 {r['p90'] / 1e6:.3f} ms  "
      f"p99 {r['p99'] / 1e6:.3f} ms  (from the send: p50 {r['serviceTimeP50'] / 1e6:.3f} ms; {r['statusCodeDistribution']})")
with open(sys.argv[3], "a") as out:
    out.write(f"commerce-load\t{sys.argv[2]}\t{r['rps']}\t{r['serviceTimeP50'] / 1e6}\t{r['p50'] / 1e6}\n")
PY
}
for _ in $(seq 1 "$rounds"); do
  h2 "--rps $rate" "${rate}/s"
  cl "get_cart --rate $rate --duration ${seconds}s" "${rate}/s"
done
for _ in $(seq 1 "$rounds"); do
  h2 "" "closed loop"
  cl "closed --profiles $work/closed.toml" "closed loop"
done
echo "commerce-load against the h2load run before it (p50 from the send; from the due time; throughput):"
python3 - "$work/results.tsv" <<'PY'
import sys
import statistics
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
pct = lambda ours, theirs: f"{(float(ours) / float(theirs) - 1) * 100:+.0f}%"
pairs = list(zip(rows[::2], rows[1::2]))
for h, c in pairs:
    assert h[0] == "h2load" and c[0] == "commerce-load"
    due = pct(c[4], h[3]) if c[1] != "closed loop" else "(no schedule)"
    print(f"  {c[1]:<12} p50 {pct(c[3], h[3]):>5}  {due:>13}  throughput {pct(c[2], h[2])}")
# How far h2load's own median moves from one of its runs to the next: the noise a single
# pair's ratio carries on this machine.
for mode in dict.fromkeys(c[1] for _, c in pairs):
    ratios = [float(c[3]) / float(h[3]) for h, c in pairs if c[1] == mode]
    own = [float(h[3]) for h, c in pairs if c[1] == mode]
    steps = [abs(b / a - 1) * 100 for a, b in zip(own, own[1:])]
    print(f"  {mode:<12} median of the p50 ratios {(statistics.median(ratios) - 1) * 100:+.0f}%"
          + (f"; h2load's p50 moved by up to {max(steps):.0f}% between its consecutive runs" if steps else ""))
PY
curl -s "http://$(awk '/metrics:/ {print $2}' "$work/serve.out" | sed 's|http://||; s|/metrics||')/metrics" \
  | grep 'grpc_server_handled_total{grpc_code="OK",grpc_method="GetCart"' || true
