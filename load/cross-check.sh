#!/usr/bin/env bash
# Cross-checks commerce-load against an independent generator, h2load (Debian's
# nghttp2-client): both send GetCart at the same fixed rate to the same commerce-server, one
# after the other, and this prints each one's throughput and median latency.
#
#   load/cross-check.sh [RATE] [SECONDS]      (defaults: 1000 requests/s for 30 s)
#
# h2load has no gRPC support of its own; a gRPC unary call is an HTTP/2 POST with a
# length-prefixed message body and two headers, which h2load can send: the body here is the
# 5-byte frame of an empty GetCartRequest (flag 0, length 0). Its --rps is per client, so four
# clients send RATE/4 each. Its summary has no percentiles: they come from its per-request
# log (--log-file: start time, status, microseconds).
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1000}"
seconds="${2:-30}"
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 2; }

work="$(mktemp -d)"
fifo="$work/stdin"
mkfifo "$fifo"
cleanup() { exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The server, its data and identities; it stops when our end of the fifo closes.
cargo xtask load serve <"$fifo" >"$work/serve.out" 2>"$work/serve.err" &
exec 3>"$fifo"
for _ in $(seq 1 600); do grep -q "is serving" "$work/serve.out" 2>/dev/null && break; sleep 1; done
grep -q "is serving" "$work/serve.out" || { cat "$work/serve.err" >&2; exit 2; }
addr="$(awk '/gRPC:/ {print $2}' "$work/serve.out")"
ids="target/load/identities.json"
tenant="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenants"][0]["id"])' "$ids")"
user="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenants"][0]["users"][0])' "$ids")"
echo "server on $addr; GetCart at $rate/s for ${seconds}s by each generator"

printf '\x00\x00\x00\x00\x00' >"$work/get_cart.bin"
clients=4
h2load -c "$clients" -m 16 --rps "$((rate / clients))" -D "$seconds" --warm-up-time 5 \
  -d "$work/get_cart.bin" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "x-tenant-id: $tenant" -H "x-user-id: $user" -H 'x-roles: customer' \
  --log-file "$work/h2load.log" \
  "http://$addr/commerce.v1.CartService/GetCart" >"$work/h2load.out"
grep -E "^finished in|requests:|status codes:" "$work/h2load.out"
python3 - "$work/h2load.log" "$seconds" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
lat = sorted(int(r[2]) for r in rows if r[1] == "200")
n = len(lat)
print(f"h2load:        {n} answered with HTTP 200, {n / float(sys.argv[2]):.1f}/s, "
      f"p50 {statistics.median(lat) / 1000:.3f} ms, p90 {lat[int(n * 0.9)] / 1000:.3f} ms, "
      f"p99 {lat[int(n * 0.99)] / 1000:.3f} ms")
PY

target/release/commerce-load get_cart --target "$addr" --identities "$ids" \
  --rate "$rate" --duration "${seconds}s" --warmup 5s --progress 0 \
  --json "$work/commerce-load.json" --html "$work/commerce-load.html" >"$work/commerce-load.out" || true
python3 - "$work/commerce-load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"commerce-load: {r['count']} answered, {r['rps']:.1f}/s, p50 {r['p50'] / 1e6:.3f} ms, "
      f"p90 {r['p90'] / 1e6:.3f} ms, p99 {r['p99'] / 1e6:.3f} ms "
      f"(from the send: p50 {r['serviceTimeP50'] / 1e6:.3f} ms), "
      f"status codes {r['statusCodeDistribution']}")
PY
