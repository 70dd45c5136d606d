#!/bin/bash
# User-space instructions per proxied request, by callgrind, for staticd and nginx: a
# figure that does not drift with the machine, for A/B of changes to the request path and
# beside nginx (the timed bench spreads by a quarter from one run to the next on a shared
# VM). Kernel work is not counted: compare system calls per request with
# `perf stat -e 'syscalls:sys_enter_*'` for that.
#
#   benches/proxy/instructions.sh [TARGET ...]     (default: target/release/staticd nginx)
#   POST=1 benches/proxy/instructions.sh ...       (POSTs with a 4 KiB body, as the bench's `post`)
#   UP_PORT=8000 URLPATH=/echo/ benches/proxy/instructions.sh ...
#                                                  (an upstream already listening on 127.0.0.1,
#                                                   e.g. gunicorn with sample_project, as the
#                                                   bench's `gunicorn`, instead of the fixed one)
#
# A TARGET is a staticd binary, or `nginx` (benches/proxy/nginx.conf.in, one process).
# Needs valgrind, h2load (Debian: nghttp2-client) and the proxy bench's binary
# (`cargo bench --bench proxy --no-run`), whose `--upstream-server PORT` is the fixed-response
# upstream of the bench's `fast` scenario. Each binary serves 1,000 requests and then
# 5,000 (h2load, 8 keep-alive connections); the difference over 4,000 is printed, so
# start-up and shutdown cancel out.
set -euo pipefail
cd "$(dirname "$0")/../.."
up_bin=$(ls -t target/release/deps/proxy-* | grep -v '\.d$' | head -1)
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=${UP_PORT:-$(free_port)}
up_pid=
[ -n "${UP_PORT:-}" ] || { "$up_bin" --upstream-server "$up_port" >"$work/upstream.log" 2>&1 & up_pid=$!; }
trap '[ -z "$up_pid" ] || kill $up_pid 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/root/static" "$work/nginx"
load=()
if [ -n "${POST:-}" ]; then
  head -c 4096 /dev/zero | tr '\0' x >"$work/body"
  load=(-d "$work/body")
fi

# instructions TARGET N: callgrind's total for a run that serves N requests.
instructions() {
  local port pid
  port=$(free_port)
  if [ "$1" = nginx ]; then
    sed -e "s#{{USER}}#user root;#" -e "s#{{PREFIX}}#$work/nginx#g" -e "s#{{GZIP}}##" \
      -e "s#{{UPSTREAM_PORT}}#$up_port#" -e "s#{{STATIC_PARENT}}#$work/root#" \
      -e "s#{{PORT}}#$port#" -e "s#master_process on;#master_process off;#" \
      benches/proxy/nginx.conf.in >"$work/nginx.conf"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
      nginx -c "$work/nginx.conf" -p "$work/nginx" >"$work/staticd.log" 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$1" serve \
      --root "$work/root/static" --static-url /static/ --upstream "127.0.0.1:$up_port" \
      --workers 1 --log-format off --bind "127.0.0.1:$port" >"$work/staticd.log" 2>&1 &
  fi
  pid=$!
  # Under valgrind start-up takes seconds: poll, with a deadline.
  for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$port${URLPATH:-/x}" && break
    kill -0 $pid 2>/dev/null || { cat "$work/staticd.log" >&2; exit 1; }
    sleep 0.1
  done
  h2load --h1 -n "$2" -c 8 -m 1 "${load[@]}" "http://127.0.0.1:$port${URLPATH:-/x}" | grep -q "$2 succeeded" ||
    { echo "h2load: not all $2 requests succeeded" >&2; exit 1; }
  kill -INT $pid
  wait $pid || true
  awk '/^summary:/ {print $2}' "$work/cg.out"
}

what=${POST:+POST, 4 KiB body}
[ $# -gt 0 ] || set -- target/release/staticd nginx
for target in "$@"; do
  a=$(instructions "$target" 1000)
  b=$(instructions "$target" 5000)
  echo "$target: $(((b - a) / 4000)) instructions per proxied ${what:-GET} (user space, libc included)"
done
