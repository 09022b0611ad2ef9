#!/usr/bin/env bash
# Network benchmarks of nsvisor, each next to its anchor, reported as ratios:
#
#  1. Sandboxes: N programs, each in its own sandbox on one bridge. Time per
#     sandbox to build (from the daemon's log: first to last "sandbox ...:
#     netns ..." line, over N-1) and to tear down (shutdown, minus the same
#     shutdown without networks), next to the same steps done with `ip`
#     commands (netns add, veth with the peer in the namespace, bridge port,
#     address, lo/eth0 up, default route).
#  2. Port-mapped TCP throughput (iperf3, one bulk stream, upload and
#     download): the host to the sandbox address directly, through nsvisor's
#     port mapping, and through socat doing the same forward.
#
# Needs root, iperf3 and socat (installed with apt-get when missing).
# Usage: sudo bench/net.sh            N=100 SECS=5 ROUNDS=3 by default;
#        ONLY=sandboxes or ONLY=throughput runs one part.
# Binaries: $NSVISOR_BIN / $NSVISORCTL_BIN, else target/release (built if absent).
# Everything it makes carries a random tag and is removed at exit; traffic
# only goes between the host and the benchmark's own namespaces.
set -euo pipefail

N=${N:-100}
ONLY=${ONLY:-}
SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NSVISOR=${NSVISOR_BIN:-$TARGET/release/nsvisor}
CTL=${NSVISORCTL_BIN:-$TARGET/release/nsvisorctl}

die() { echo "bench/net.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, netlink)"
if ! command -v iperf3 >/dev/null || ! command -v socat >/dev/null; then
    apt-get install -y iperf3 socat >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y iperf3 socat >/dev/null; } ||
        die "cannot install iperf3 and socat"
fi
if [ ! -x "$NSVISOR" ] || [ ! -x "$CTL" ]; then
    (cd "$ROOT" && cargo build --release -p nsvisor -p nsvisorctl)
fi

TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
DIR=$(mktemp -d /tmp/nsvisor-bench-net.XXXXXX)
BR=nsvb$TAG
# A /24 in 172.16.0.0/12 that no host route overlaps.
ROUTES=$(ip -4 route show table all | awk '{print $1}')
while :; do
    P="172.$((16 + RANDOM % 16)).$((RANDOM % 256))"
    grep -q "^$P\.\|^172\.16\.0\.0/12" <<<"$ROUTES" || break
done
DAEMON=

cleanup() {
    [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    for ns in $(ip netns list | awk '{print $1}' | grep -- "-$TAG-" || true); do ip netns del "$ns" || true; done
    ip link del "$BR" 2>/dev/null || true
    [ -n "${SOCAT:-}" ] && kill "$SOCAT" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

now() { date +%s.%N; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
ms() { awk -v a="$1" -v b="$2" -v n="${3:-1}" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'; }

# Writes the config: N programs running CMD, with or without sandboxes.
config() { # with_net cmd...
    local with_net=$1; shift
    local cmd; cmd=$(printf '"%s", ' "$@"); cmd="[${cmd%, }]"
    {
        echo "[supervisor]"
        echo "socket = \"$DIR/nsvisor.sock\""
        echo "console = \"off\""
        echo
        echo "[networks.bench]"
        echo "bridge = \"$BR\""
        echo "subnet = \"$P.0/24\""
        echo "gateway = \"$P.1\""
        for i in $(seq 1 "$N"); do
            echo
            echo "[programs.p$i]"
            echo "command = $cmd"
            echo "startsecs = 0"
            if [ "$with_net" = 1 ]; then
                echo "network = \"bench\""
                echo "sandbox = \"b-$TAG-$i\""
                echo "address = \"$P.$((i + 1))\""
            fi
        done
    } >"$DIR/nsvisor.toml"
}

running() { "$CTL" -s "$DIR/nsvisor.sock" status 2>/dev/null | grep -c RUNNING || true; }

# Starts the daemon on the config, returns once all N are RUNNING; prints
# "start_ms stop_ms" (start until all RUNNING, SIGTERM until exit).
run_daemon() {
    local t0 t1 t2 t3
    t0=$(now)
    "$NSVISOR" -c "$DIR/nsvisor.toml" 2>"$DIR/daemon.log" &
    DAEMON=$!
    until [ "$(running)" = "$N" ]; do
        kill -0 "$DAEMON" 2>/dev/null || die "nsvisor exited: $(tail -5 "$DIR/daemon.log")"
        sleep 0.01
    done
    t1=$(now)
    t2=$(now)
    kill -TERM "$DAEMON"
    wait "$DAEMON" || true
    DAEMON=
    t3=$(now)
    echo "$(ms "$t0" "$t1") $(ms "$t2" "$t3") $(build_ms)"
}

# Milliseconds per sandbox built, from the log of the last run.
build_ms() {
    sed 's/\x1b\[[0-9;]*m//g' "$DIR/daemon.log" | grep 'sandbox .*: netns ' |
        awk -v n="$N" '{ split(substr($1, 12, 15), t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
                         if (NR == 1) first = s; last = s }
                       END { if (NR > 1) printf "%.3f", (last - first) * 1000 / (n - 1); else print "nan" }'
}

sandboxes() {
echo "== sandboxes: $N, subnet $P.0/24, bridge $BR"
# With ip commands.
t0=$(now)
ip link add "$BR" type bridge
ip addr add "$P.1/24" dev "$BR"
ip link set "$BR" up
for i in $(seq 1 "$N"); do
    ns=nsvb-$TAG-$i h=nsvh$TAG$i
    ip netns add "$ns"
    ip link add "$h" type veth peer name eth0 netns "$ns"
    ip link set "$h" master "$BR" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$P.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$P.1"
done
t1=$(now)
# The same teardown as nsvisor's: unmount every namespace, wait until the
# kernel has destroyed them with their veth pairs, delete the bridge.
for i in $(seq 1 "$N"); do
    ip netns del "nsvb-$TAG-$i"
done
while ip -o link show master "$BR" | grep -q .; do sleep 0.005; done
ip link del "$BR"
t2=$(now)
ip_up=$(ms "$t0" "$t1" "$N")
ip_down=$(ms "$t1" "$t2" "$N")

# With nsvisor, and the same daemon run without networks: the fastest of
# ROUNDS runs each (the machine is shared; the minimum is the least noisy).
plain_start=1e9 plain_stop=1e9 net_start=1e9 net_stop=1e9 nsv_up=1e9
for _ in $(seq 1 "$ROUNDS"); do
    config 0 sleep infinity
    run_daemon >"$DIR/times"
    read -r a b _ <"$DIR/times"
    plain_start=$(min "$plain_start" "$a") plain_stop=$(min "$plain_stop" "$b")
    config 1 sleep infinity
    run_daemon >"$DIR/times"
    read -r a b c <"$DIR/times"
    net_start=$(min "$net_start" "$a") net_stop=$(min "$net_stop" "$b") nsv_up=$(min "$nsv_up" "$c")
    [ -z "$(ip netns list | grep -- "-$TAG-" || true)" ] || die "sandboxes left after shutdown"
done
nsv_down=$(awk -v a="$plain_stop" -v b="$net_stop" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }')
printf '%-34s %10s %10s\n' "per sandbox (ms)" "create" "remove"
printf '%-34s %10s %10s\n' "ip commands" "$ip_up" "$ip_down"
printf '%-34s %10s %10s\n' "nsvisor" "$nsv_up" "$nsv_down"
printf '%-34s %10s %10s\n' "ratio ip / nsvisor" \
    "$(awk -v a="$ip_up" -v b="$nsv_up" 'BEGIN { printf "%.1fx", a / b }')" \
    "$(awk -v a="$ip_down" -v b="$nsv_down" 'BEGIN { printf "%.1fx", a / b }')"
echo "(nsvisor: daemon start until $N RUNNING $net_start ms, without networks $plain_start ms;"
echo " shutdown $net_stop ms, without networks $plain_stop ms)"
}

throughput() {
echo "== port-mapped TCP throughput: iperf3, 1 stream, ${SECS}s x $ROUNDS rounds"
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MAPPED=$(pick_port)
SOCAT_PORT=$(pick_port)
N=1
{
    echo "[supervisor]"
    echo "socket = \"$DIR/nsvisor.sock\""
    echo "console = \"off\""
    echo "[networks.bench]"
    echo "bridge = \"$BR\""
    echo "subnet = \"$P.0/24\""
    echo "gateway = \"$P.1\""
    echo "[programs.iperf]"
    echo "command = [\"iperf3\", \"-s\", \"-p\", \"5201\"]"
    echo "startsecs = 0"
    echo "network = \"bench\""
    echo "sandbox = \"b-$TAG-iperf\""
    echo "address = \"$P.2\""
    echo "ports = [\"127.0.0.1:$MAPPED:5201\"]"
} >"$DIR/nsvisor.toml"
"$NSVISOR" -c "$DIR/nsvisor.toml" 2>"$DIR/daemon.log" &
DAEMON=$!
until [ "$(running)" = 1 ]; do
    kill -0 "$DAEMON" 2>/dev/null || die "nsvisor exited: $(tail -5 "$DIR/daemon.log")"
    sleep 0.01
done
socat "TCP-LISTEN:$SOCAT_PORT,bind=127.0.0.1,fork,reuseaddr" "TCP:$P.2:5201" 2>/dev/null &
SOCAT=$!

gbits() { # host port [iperf3 options] -> receiver Gbit/s
    local out host=$1 port=$2
    shift 2
    for _ in $(seq 1 10); do
        out=$(timeout $((SECS + 20)) iperf3 -c "$host" -p "$port" -t "$SECS" -f m --connect-timeout 3000 "$@" 2>/dev/null) && break
        sleep 0.1
    done
    awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") printf "%.2f", $(i - 1) / 1000 }' <<<"$out"
}
median() { tr ' ' '\n' | sort -g | awk 'NF { a[++n] = $1 } END { print a[int((n + 1) / 2)] }'; }
ratios() { # a[] b[] -> per-round a/b ratios (the runs of a round are back to
    # back, so load from elsewhere on the machine mostly cancels out)
    local -n a=$1 b=$2
    for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f ", x / y }'; done
}
# Upload: the client sends into the sandbox; download (iperf3 -R): the
# program in the sandbox sends to the client.
for dir in upload download; do
    opt=()
    [ "$dir" = download ] && opt=(-R)
    direct=() mapped=() socat=()
    for _ in $(seq 1 "$ROUNDS"); do
        direct+=("$(gbits "$P.2" 5201 "${opt[@]}")")
        mapped+=("$(gbits 127.0.0.1 "$MAPPED" "${opt[@]}")")
        socat+=("$(gbits 127.0.0.1 "$SOCAT_PORT" "${opt[@]}")")
    done
    rd=$(ratios mapped direct) rs=$(ratios mapped socat)
    echo "-- $dir"
    printf '%-34s %10s   %s\n' "path" "Gbit/s" "rounds"
    printf '%-34s %10s   %s\n' "direct to the sandbox address" "$(echo "${direct[*]}" | median)" "${direct[*]}"
    printf '%-34s %10s   %s\n' "nsvisor port mapping" "$(echo "${mapped[*]}" | median)" "${mapped[*]}"
    printf '%-34s %10s   %s\n' "socat forward" "$(echo "${socat[*]}" | median)" "${socat[*]}"
    echo "nsvisor / direct = $(echo "$rd" | median) (rounds ${rd% })"
    echo "nsvisor / socat  = $(echo "$rs" | median) (rounds ${rs% })"
done
}

case "$ONLY" in
    sandboxes) sandboxes ;;
    throughput) throughput ;;
    *) sandboxes; echo; throughput ;;
esac
