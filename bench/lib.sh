# lib.sh: what the shop benchmarks share. Source it; it gives a temporary
# folder ($dir, removed at exit with the shop last started), serve and
# median.

dir=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

# serve BUILD DATA [ARGS...]: starts BUILD's `shop serve` on a free loopback
# port with its store in DATA, its output in DATA.out; sets pid, url and
# key_file (DATA/admin.key; none with --open-access).
serve() {
  local build=$1 data=$2
  shift 2
  "$build/shop" serve --listen 127.0.0.1:0 --data "$data" --log-level error "$@" >"$data.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    grep -q 'listening on' "$data.out" 2>/dev/null && break
    sleep 0.05
  done
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$data.out" | head -1)
  [ -n "$url" ] || { cat "$data.out" >&2; exit 1; }
  key_file=$data/admin.key
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
