#!/usr/bin/env bash
# Network benchmarks of nsvisor, each next to its anchor:
#
#  1. Sandboxes: N programs, each in its own sandbox on one bridge, created
#     and removed by nsvisor, against the same steps done by `ip -batch`
#     (bridge, netns, veth with its peer in the namespace, bridge port, then
#     lo up, address, eth0 up and default route inside each namespace: one
#     `ip -batch` process for the host side plus one `ip -n NS -batch` per
#     namespace, since `ip` cannot switch namespaces within a batch).
#     nsvisor's cost per sandbox is (daemon with sandboxes - the same daemon
#     without) / N, for start (until all RUNNING) and for shutdown, paired
#     within each round.
#  2. TCP through four paths from a client in OUTSIDE to a server in a
#     sandbox: direct (routed through HOST to the sandbox address),
#     `port_mode = "proxy"`, `port_mode = "nat"`, and socat forwarding the
#     same port in HOST (as a peer with nsvisor's own tuning: 1 MiB buffer,
#     TCP_NODELAY, Reno towards the sandbox; once with 1 MiB rcvbuf/sndbuf,
#     once with the kernel's autotuned socket buffers, as nsvisor uses).
#     Bulk throughput (iperf3, one stream, SECS s, upload and download) and
#     connections per second (bench/connrate.c: connect, 64-byte request,
#     64-byte answer, server closes, back to back for CPS_SECS s).
#
# Every daemon runs inside a network namespace HOST made here (entered with
# `nsenter --net`, which keeps the mount namespace), clients in OUTSIDE,
# joined to HOST by a veth on a test /24. The real host's interfaces,
# routes, firewall and sysctls are never touched; traffic only goes to
# addresses made here. Every figure is the median of ROUNDS rounds (min-max
# beside it); in each round every path runs once, in an order that rotates
# between rounds.
#
# Output: a table on stdout and a JSON document with every round's raw
# figure at $JSON (default bench/results/net-DATE.json). Any failure exits
# non-zero, with {"error": ...} in the JSON.
#
# Needs root, iperf3, socat, nsenter, cc and python3 (iperf3 and socat are
# installed with apt-get when missing).
# Usage: sudo bench/net.sh     N=100 ROUNDS=5 SECS=5 CPS_SECS=$SECS by default;
#        ONLY=sandboxes or ONLY=traffic runs one part.
# Binaries: $NSVISOR_BIN / $NSVISORCTL_BIN, else target/release (built if absent).
set -eEuo pipefail

N=${N:-100}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CPS_SECS=${CPS_SECS:-$SECS}
ONLY=${ONLY:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NSVISOR=${NSVISOR_BIN:-$TARGET/release/nsvisor}
CTL=${NSVISORCTL_BIN:-$TARGET/release/nsvisorctl}
JSON=${JSON:-$ROOT/bench/results/net-$(date -u +%Y%m%dT%H%M%SZ).json}
BUF=1048576 # nsvisor's splice pipe (supervisor/src/net/tcp.rs, CHUNK)

TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
DIR=$(mktemp -d /tmp/nsvisor-bench-net.XXXXXX)
RAW=$DIR/raw.tsv
META=$DIR/meta.tsv
: >"$RAW"
: >"$META"
HOST=nsvb-$TAG-HOST
OUT=nsvb-$TAG-OUT
BR=nsvb$TAG
DAEMON=
PIDS=()
ERROR=

die() {
    ERROR="$*"
    echo "bench/net.sh: $*" >&2
    exit 1
}
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; } # figure path round value
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" -v n="${3:-1}" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }'; }
in_host() { nsenter --net="/run/netns/$HOST" -- "$@"; }
in_out() { nsenter --net="/run/netns/$OUT" -- "$@"; }

# Polls CHECK (a command) until it succeeds; fails after TIMEOUT seconds.
wait_until() { # what timeout check...
    local what=$1 deadline=$(($(date +%s) + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            [ -z "$DAEMON" ] || what+=" (nsvisor's log ends: $(tail -3 "$DIR/daemon.log" | sed 's/\x1b\[[0-9;]*m//g'))"
            die "timed out waiting for $what"
        fi
        [ -z "$DAEMON" ] || kill -0 "$DAEMON" 2>/dev/null ||
            die "nsvisor exited while waiting for $what: $(tail -5 "$DIR/daemon.log")"
        sleep 0.01
    done
}

summarise() { # status
    META="$META" RAW="$RAW" JSON="$JSON" ERROR="$ERROR" STATUS="$1" python3 - <<'EOF'
import json, os, statistics
from collections import defaultdict

def num(v):
    try:
        return int(v) if v.isdigit() else float(v)
    except ValueError:
        return v

meta = {}
for line in open(os.environ["META"]):
    k, v = line.rstrip("\n").split("\t", 1)
    meta[k] = num(v)
rounds = defaultdict(dict)  # (figure, path) -> {round: value}
for line in open(os.environ["RAW"]):
    fig, path, rnd, val = line.rstrip("\n").split("\t")
    rounds[(fig, path)][int(rnd)] = float(val)

def stat(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}

ORDER = ["sandbox_create_ms", "sandbox_remove_ms", "daemon_start_ms", "daemon_stop_ms", "tcp_upload_gbit_s",
         "tcp_download_gbit_s", "connections_per_s", "ip-batch", "nsvisor", "nsvisor-no-net", "direct", "proxy", "nat",
         "socat", "socat-autobuf"]
def order(key):
    return tuple(ORDER.index(k) if k in ORDER else len(ORDER) for k in key)
figures = {}
for (fig, path), by_round in sorted(rounds.items(), key=lambda kv: order(kv[0])):
    vals = [by_round[r] for r in sorted(by_round)]
    figures.setdefault(fig, {})[path] = {"rounds": vals, **stat(vals)}

# Per-round ratios (the paths of a round run back to back).
ratios = {}
def ratio(fig, a, b):
    ra, rb = rounds.get((fig, a), {}), rounds.get((fig, b), {})
    common = sorted(set(ra) & set(rb))
    if common:
        vals = [ra[r] / rb[r] for r in common if rb[r]]
        if vals:
            ratios.setdefault(fig, {})[f"{a} / {b}"] = {"rounds": vals, **stat(vals)}
for fig in ("tcp_upload_gbit_s", "tcp_download_gbit_s", "connections_per_s"):
    for a, b in (("proxy", "direct"), ("nat", "direct"), ("proxy", "nat"), ("proxy", "socat"),
                 ("proxy", "socat-autobuf")):
        ratio(fig, a, b)
for fig in ("sandbox_create_ms", "sandbox_remove_ms"):
    ratio(fig, "ip-batch", "nsvisor")

doc = {"benchmark": "bench/net.sh", **{k: meta.pop(k) for k in list(meta) if not k.startswith("setting.")},
       "settings": {k[8:]: v for k, v in meta.items()}, "figures": figures, "ratios": ratios}
if os.environ["STATUS"] != "0":
    doc["error"] = os.environ["ERROR"] or f"exited with status {os.environ['STATUS']}"
os.makedirs(os.path.dirname(os.path.abspath(os.environ["JSON"])), exist_ok=True)
with open(os.environ["JSON"], "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")

# The table.
units = {"sandbox_create_ms": "ms per sandbox", "sandbox_remove_ms": "ms per sandbox",
         "tcp_upload_gbit_s": "Gbit/s", "tcp_download_gbit_s": "Gbit/s", "connections_per_s": "conn/s",
         "daemon_start_ms": "ms", "daemon_stop_ms": "ms"}
def fmt(x):
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
for fig, paths in figures.items():
    print(f"-- {fig} ({units.get(fig, '')}; median of {max(p['n'] for p in paths.values())} rounds, min-max)")
    for path, s in paths.items():
        print(f"   {path:<22} {fmt(s['median']):>8}   {fmt(s['min'])}-{fmt(s['max'])}")
    for name, s in ratios.get(fig, {}).items():
        print(f"   {name:<22} {s['median']:>8.2f}   {s['min']:.2f}-{s['max']:.2f}   (per-round ratio)")
if "error" in doc:
    print(f"FAILED: {doc['error']}")
print(f"raw figures: {os.environ['JSON']}")
EOF
}

cleanup() {
    local status=$?
    trap - EXIT
    set +e
    if [ -n "$DAEMON" ]; then kill -TERM "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for ns in $(ip netns list | awk '{print $1}' | grep -- "-$TAG-"); do ip netns del "$ns"; done
    meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
    summarise "$status" || status=1
    if [ -n "${KEEP:-}" ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'ERROR=${ERROR:-"line $LINENO: \"$BASH_COMMAND\" failed"}' ERR

# ---- set-up ---------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, netlink)"
if ! command -v iperf3 >/dev/null || ! command -v socat >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y iperf3 socat || { apt-get update && apt-get install -y iperf3 socat; }; } >/dev/null 2>&1 ||
        die "cannot install iperf3 and socat"
fi
for tool in nsenter cc python3 ss; do command -v "$tool" >/dev/null || die "needs $tool"; done
if [ ! -x "$NSVISOR" ] || [ ! -x "$CTL" ]; then
    (cd "$ROOT" && cargo build --release -p nsvisor -p nsvisorctl) || die "cannot build nsvisor"
fi
cc -O2 -Wall -Wextra -o "$DIR/connrate" "$ROOT/bench/connrate.c" || die "cannot build bench/connrate.c"

meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta commit "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')"
meta kernel "$(uname -r)"
meta cpus "$(nproc)"
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta nsvisor "$NSVISOR"
meta iperf3 "$(iperf3 -v | head -1)"
meta socat "$(socat -V | awk '/socat version/ { print $3 }')"
meta ip "$(ip -V)"
for v in N ROUNDS SECS CPS_SECS ONLY; do meta "setting.$v" "${!v}"; done
meta setting.socat "socat -b $BUF TCP4-LISTEN:PORT,fork,reuseaddr,nodelay[,rcvbuf=$BUF,sndbuf=$BUF] TCP4:SANDBOX:PORT,nodelay,sockopt-string=6:13:reno[,rcvbuf=$BUF,sndbuf=$BUF] (socat-autobuf: without rcvbuf/sndbuf)"

# Two free /24s in 172.16.0.0/12: the sandboxes' and HOST-OUTSIDE's. A
# candidate is free when no route of the host (any table) overlaps it,
# either way round: a wider route such as 172.17.0.0/16 counts.
read -r P L < <(python3 - <<'EOF'
import ipaddress, random, subprocess, sys
out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True).stdout
out += subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
TYPES = {"unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat"}
used = []
for line in out.splitlines():
    words = line.split()
    if len(words) > 3 and words[2] == "inet":  # ip -o addr: "N: dev inet A/L ..."
        words = words[3:]
    while words and words[0] in TYPES:
        words = words[1:]
    if not words or words[0] == "default":  # covers every address: not a subnet in use
        continue
    try:
        used.append(ipaddress.ip_network(words[0], strict=False))
    except ValueError:
        pass
picked = []
for _ in range(10000):
    n = ipaddress.ip_network(f"172.{random.randrange(16, 32)}.{random.randrange(256)}.0/24")
    if not any(n.overlaps(u) for u in used + picked):
        picked.append(n)
        if len(picked) == 2:
            print(" ".join(str(p.network_address).rsplit(".", 1)[0] for p in picked))
            sys.exit(0)
sys.exit("no free /24 in 172.16.0.0/12")
EOF
) || die "cannot find two free /24s in 172.16.0.0/12"
[ -n "${L:-}" ] || die "cannot find two free /24s in 172.16.0.0/12"
meta sandbox_subnet "$P.0/24"
meta link_subnet "$L.0/24"

# HOST and OUTSIDE, joined by a veth: HOST is $L.1, OUTSIDE $L.2 with a
# route to the sandboxes through HOST (for the direct path).
ip netns add "$HOST"
ip netns add "$OUT"
ip -n "$HOST" link add "nsvh$TAG" type veth peer name "nsvo$TAG" netns "$OUT"
for side in "$HOST nsvh$TAG $L.1" "$OUT nsvo$TAG $L.2"; do
    read -r ns dev addr <<<"$side"
    ip -n "$ns" addr add "$addr/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    ip -n "$ns" link set lo up
done
ip -n "$OUT" route add "$P.0/24" via "$L.1"
in_host sysctl -qw net.ipv4.ip_forward=1
# Clients in OUTSIDE may open tens of thousands of connections per round.
in_out sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
meta congestion_control "$(in_out sysctl -n net.ipv4.tcp_congestion_control) (nsvisor and socat: reno towards the sandbox)"

# ---- 1. sandboxes -----------------------------------------------------------

running() { "$CTL" -s "$DIR/nsvisor.sock" status 2>/dev/null | grep -c RUNNING || true; }
all_running() { [ "$(running)" = "$1" ]; }

# N programs running `sleep infinity`, with sandboxes (1) or without (0).
sandbox_config() { # with_net
    {
        printf '[supervisor]\nsocket = "%s"\nconsole = "off"\n\n' "$DIR/nsvisor.sock"
        printf '[networks.bench]\nbridge = "%s"\nsubnet = "%s.0/24"\ngateway = "%s.1"\nmasquerade = false\n' "$BR" "$P" "$P"
        for i in $(seq 1 "$N"); do
            printf '\n[programs.p%s]\ncommand = ["sleep", "infinity"]\nstartsecs = 0\n' "$i"
            if [ "$1" = 1 ]; then
                printf 'network = "bench"\nsandbox = "b-%s-%s"\naddress = "%s.%s"\n' "$TAG" "$i" "$P" "$((i + 1))"
            fi
        done
    } >"$DIR/nsvisor.toml"
}

# Starts the daemon in HOST; sets START_MS (until all N RUNNING) and
# STOP_MS (SIGTERM until it has exited).
daemon_round() { # with_net
    local t0 t1 t2
    sandbox_config "$1"
    t0=$(now)
    nsenter --net="/run/netns/$HOST" -- "$NSVISOR" -c "$DIR/nsvisor.toml" 2>"$DIR/daemon.log" &
    DAEMON=$!
    wait_until "$N programs RUNNING" 120 all_running "$N"
    t1=$(now)
    kill -TERM "$DAEMON"
    wait "$DAEMON" || die "nsvisor exited with $? at shutdown: $(tail -5 "$DIR/daemon.log")"
    DAEMON=
    t2=$(now)
    if ip netns list | grep -- "nsvisor-b-$TAG-" >/dev/null; then die "sandboxes left after shutdown"; fi
    START_MS=$(ms "$t0" "$t1") STOP_MS=$(ms "$t1" "$t2")
}

no_ports() { [ -z "$(ip -n "$HOST" -o link show master "$BR")" ]; }

# The same steps with `ip -batch`; sets CREATE_MS and REMOVE_MS per sandbox.
ip_batch_round() {
    local t0 t1 t2 t3 i
    {
        printf 'link add %s type bridge\naddr add %s.1/24 dev %s\nlink set %s up\n' "$BR" "$P" "$BR" "$BR"
        for i in $(seq 1 "$N"); do
            printf 'netns add nsvb-%s-%s\n' "$TAG" "$i"
            printf 'link add nsvh%s%s type veth peer name eth0 netns nsvb-%s-%s\n' "$TAG" "$i" "$TAG" "$i"
            printf 'link set nsvh%s%s master %s up\n' "$TAG" "$i" "$BR"
        done
    } >"$DIR/ip-host.batch"
    for i in $(seq 1 "$N"); do
        printf 'link set lo up\naddr add %s.%s/24 dev eth0\nlink set eth0 up\nroute add default via %s.1\n' \
            "$P" "$((i + 1))" "$P" >"$DIR/ip-$i.batch"
    done
    for i in $(seq 1 "$N"); do printf 'netns del nsvb-%s-%s\n' "$TAG" "$i"; done >"$DIR/ip-del.batch"
    t0=$(now)
    in_host ip -batch "$DIR/ip-host.batch"
    for i in $(seq 1 "$N"); do ip -n "nsvb-$TAG-$i" -batch "$DIR/ip-$i.batch"; done
    t1=$(now)
    [ "$(ip -n "$HOST" -o link show master "$BR" | grep -c .)" = "$N" ] || die "ip -batch: not $N bridge ports"
    local routes
    routes=$(ip -n "nsvb-$TAG-$N" route)
    [[ $routes == *"default via $P.1 "* ]] || die "ip -batch: no default route in the last sandbox: $routes"
    # Like nsvisor's teardown: unmount every namespace, wait until the kernel
    # has destroyed them with their veth pairs, delete the bridge.
    t2=$(now)
    in_host ip -batch "$DIR/ip-del.batch"
    wait_until "the bridge to lose its ports" 60 no_ports
    ip -n "$HOST" link del "$BR"
    t3=$(now)
    CREATE_MS=$(ms "$t0" "$t1" "$N") REMOVE_MS=$(ms "$t2" "$t3" "$N")
}

sandboxes() {
    echo "== sandboxes: $N, subnet $P.0/24, $ROUNDS rounds" >&2
    local r a b c d e f
    for r in $(seq 1 "$ROUNDS"); do
        # The order of the three runs rotates between rounds.
        for step in $(printf 'ip\nplain\nnet\n' | awk -v r="$r" '{ a[NR] = $0 } END { for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1] }'); do
            case $step in
                ip) ip_batch_round; a=$CREATE_MS b=$REMOVE_MS ;;
                plain) daemon_round 0; c=$START_MS d=$STOP_MS ;;
                net) daemon_round 1; e=$START_MS f=$STOP_MS ;;
            esac
        done
        record sandbox_create_ms ip-batch "$r" "$a"
        record sandbox_remove_ms ip-batch "$r" "$b"
        record daemon_start_ms nsvisor-no-net "$r" "$c"
        record daemon_stop_ms nsvisor-no-net "$r" "$d"
        record daemon_start_ms nsvisor "$r" "$e"
        record daemon_stop_ms nsvisor "$r" "$f"
        record sandbox_create_ms nsvisor "$r" "$(awk -v a="$c" -v b="$e" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / n }')"
        record sandbox_remove_ms nsvisor "$r" "$(awk -v a="$d" -v b="$f" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / n }')"
        echo "   round $r: ip-batch $a/$b ms, nsvisor start $e (without sandboxes $c), stop $f ($d)" >&2
    done
}

# ---- 2. traffic -------------------------------------------------------------

# Four programs, each in a sandbox of its own (the same set-up for all):
# an iperf3 server and a connrate server mapped with each port mode. The
# direct and socat paths go to the proxy-mapped ones.
declare -A TCP CPS
TCP=([direct]=$P.2:5201 [proxy]=$L.1:8001 [nat]=$L.1:8002 [socat]=$L.1:8005 [socat-autobuf]=$L.1:8007)
CPS=([direct]=$P.4:7000 [proxy]=$L.1:8003 [nat]=$L.1:8004 [socat]=$L.1:8006 [socat-autobuf]=$L.1:8008)
PATHS="direct proxy nat socat socat-autobuf"

traffic_config() {
    {
        printf '[supervisor]\nsocket = "%s"\nconsole = "off"\n\n' "$DIR/nsvisor.sock"
        printf '[networks.bench]\nbridge = "%s"\nsubnet = "%s.0/24"\ngateway = "%s.1"\n' "$BR" "$P" "$P"
        for prog in "iperf-proxy 2 proxy 8001 5201 iperf3 -s -p 5201" "iperf-nat 3 nat 8002 5201 iperf3 -s -p 5201" \
            "echo-proxy 4 proxy 8003 7000 $DIR/connrate serve 7000" "echo-nat 5 nat 8004 7000 $DIR/connrate serve 7000"; do
            read -r name host mode hostport port cmd <<<"$prog"
            cmd=$(printf '"%s", ' $cmd)
            printf '\n[programs.%s]\ncommand = [%s]\nstartsecs = 0\nnetwork = "bench"\nsandbox = "b-%s-%s"\naddress = "%s.%s"\n' \
                "$name" "${cmd%, }" "$TAG" "$name" "$P" "$host"
            printf 'ports = ["%s:%s"]\nport_mode = "%s"\n' "$hostport" "$port" "$mode"
        done
    } >"$DIR/nsvisor.toml"
}

listening() { # netns port
    [ -n "$(nsenter --net="/run/netns/$1" -- ss -Hltn "sport = :$2")" ]
}

# Sets GBIT to the receiver's Gbit/s of one iperf3 run.
gbit() { # path [-R]
    local out
    out=$(in_out timeout $((SECS + 30)) iperf3 -c "${TCP[$1]%:*}" -p "${TCP[$1]#*:}" -t "$SECS" -J \
        --connect-timeout 3000 "${@:2}") || true
    GBIT=$(python3 -c '
import json, sys
d = json.loads(sys.stdin.read() or "{}")
if "error" in d or "end" not in d:
    sys.exit(d.get("error", "no output"))
print(d["end"]["sum_received"]["bits_per_second"] / 1e9)' <<<"$out") ||
        die "iperf3 to ${TCP[$1]} ($1) failed"
}

# Sets RATE to the connections per second of one connrate run.
cps() { # path
    local out ok secs failed
    out=$(in_out "$DIR/connrate" client "${CPS[$1]%:*}" "${CPS[$1]#*:}" "$CPS_SECS") ||
        die "connrate to ${CPS[$1]} ($1) failed"
    read -r ok secs failed <<<"$out"
    [ "$failed" = 0 ] || die "connrate to ${CPS[$1]} ($1): $failed of $((ok + failed)) requests failed"
    RATE=$(awk -v n="$ok" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
}

traffic() {
    echo "== traffic: $PATHS; iperf3 ${SECS}s, connrate ${CPS_SECS}s; $ROUNDS rounds" >&2
    traffic_config
    nsenter --net="/run/netns/$HOST" -- "$NSVISOR" -c "$DIR/nsvisor.toml" 2>"$DIR/daemon.log" &
    DAEMON=$!
    wait_until "4 programs RUNNING" 30 all_running 4
    for sb in "iperf-proxy 5201" "iperf-nat 5201" "echo-proxy 7000" "echo-nat 7000"; do
        read -r name port <<<"$sb"
        wait_until "port $port listening in sandbox $name" 30 listening "nsvisor-b-$TAG-$name" "$port"
    done
    local up="nodelay,sockopt-string=6:13:reno" # TCP_NODELAY; TCP_CONGESTION reno, as nsvisor
    for fwd in "8005 ${TCP[direct]} ,rcvbuf=$BUF,sndbuf=$BUF" "8006 ${CPS[direct]} ,rcvbuf=$BUF,sndbuf=$BUF" \
        "8007 ${TCP[direct]}" "8008 ${CPS[direct]}"; do
        read -r from to bufs <<<"$fwd"
        nsenter --net="/run/netns/$HOST" -- socat -b "$BUF" "TCP4-LISTEN:$from,bind=$L.1,fork,reuseaddr,nodelay${bufs:-}" \
            "TCP4:$to,$up${bufs:-}" 2>>"$DIR/socat.log" &
        PIDS+=($!)
    done
    for port in 8005 8006 8007 8008; do wait_until "socat on $port" 30 listening "$HOST" "$port"; done
    for path in $PATHS; do
        wait_until "an answer through $path (${CPS[$path]})" 30 \
            in_out "$DIR/connrate" probe "${CPS[$path]%:*}" "${CPS[$path]#*:}"
    done
    local r path order
    for r in $(seq 1 "$ROUNDS"); do
        order=$(tr ' ' '\n' <<<"$PATHS" | awk -v r="$r" '{ a[NR] = $0 } END { for (i = 0; i < NR; i++) print a[(i + r - 1) % NR + 1] }')
        for path in $order; do gbit "$path" && record tcp_upload_gbit_s "$path" "$r" "$GBIT"; done
        for path in $order; do gbit "$path" -R && record tcp_download_gbit_s "$path" "$r" "$GBIT"; done
        for path in $order; do cps "$path" && record connections_per_s "$path" "$r" "$RATE"; done
        echo "   round $r done" >&2
    done
    kill -TERM "$DAEMON"
    wait "$DAEMON" || die "nsvisor exited with $? at shutdown: $(tail -5 "$DIR/daemon.log")"
    DAEMON=
}

case "$ONLY" in
    sandboxes) sandboxes ;;
    traffic) traffic ;;
    "") sandboxes; traffic ;;
    *) die "ONLY must be sandboxes or traffic" ;;
esac
