#!/usr/bin/env bash
# Log throughput: one program writes SIZE_MB MiB of 64-byte lines; how fast do
# they reach a log file through nsvisor, compared with `cat` moving the same
# bytes from a pipe into a file (the limit)? Both in one run, RUNS times each,
# alternating, so machine noise hits both alike.
#
# Measured per run: wall time from the generator's start until every byte is
# in the file (MB/s), and the CPU seconds of the mover (cat, or the whole
# nsvisor daemon) per GiB. nsvisor runs in three set-ups:
#   file          file sink only (console off): the zero-copy path (splice)
#   file+console  the same plus the console (raw, to /dev/null): the copy path
#   file+follow   file only, while `nsvisorctl tail -f` follows the stream
#
# Usage: bench/logs.sh            (SIZE_MB=1024 RUNS=3 by default)
#        NSVISOR_BIN=... NSVISORCTL_BIN=... to use existing binaries
# Needs: perl (generator and timing).
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${NSVISOR_BIN:-}" ]]; then
    (cd "$root" && cargo build --release -q -p nsvisor -p nsvisorctl)
    target=${CARGO_TARGET_DIR:-$root/target}/release
    NSVISOR_BIN=$target/nsvisor
    NSVISORCTL_BIN=$target/nsvisorctl
fi
work=$(mktemp -d /tmp/nsvisor-bench-logs.XXXXXX)
daemon_pid=
cleanup() {
    [[ -n "$daemon_pid" ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

bytes=$((SIZE_MB * 1024 * 1024))
# The generator: records its start time, then writes 64-byte lines in 64 KiB writes.
gen=$work/gen.pl
cat > "$gen" <<'EOF'
use Time::HiRes qw(time);
my ($mib, $start) = @ARGV;
open(my $s, '>', $start) or die; printf $s "%.6f\n", time; close $s;
my $line = ("x" x 63) . "\n";
my $block = $line x 1024;
for (1 .. $mib * 16) { my $off = 0; while ($off < 65536) { $off += syswrite(STDOUT, $block, 65536 - $off, $off) // die "write: $!"; } }
EOF
# Waits until FILE has N bytes; prints the time.
wait_size() {
    perl -MTime::HiRes=time,sleep -e 'my ($f, $n) = @ARGV; sleep 0.0005 while ((-s $f) // 0) < $n; printf "%.6f\n", time' "$1" "$2"
}
cpu_of() { # utime+stime of a live pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
per_gib() { awk -v c="$1" -v mb="$SIZE_MB" 'BEGIN { printf "%.2f", c * 1024 / mb }'; }

run_cat() {
    local out=$work/cat.log
    rm -f "$out"
    # The wrapper prints when cat ended and cat's CPU time (user + system).
    perl "$gen" "$SIZE_MB" "$work/start" \
        | perl -MTime::HiRes=time -e 'system("cat") == 0 or die; my @t = times;
              printf STDERR "%.6f %.2f\n", time, $t[2] + $t[3]' > "$out" 2> "$work/cat.end"
    local end cpu start
    read -r end cpu < "$work/cat.end"
    start=$(cat "$work/start")
    [[ $(stat -c %s "$out") == "$bytes" ]] || { echo "cat: short file" >&2; exit 1; }
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $cpu"
    rm -f "$out"
}

# run_nsvisor CONSOLE FOLLOW
run_nsvisor() {
    local console=$1 follow=$2 out=$work/p.log sock=$work/n.sock
    rm -f "$out" "$work/start"
    cat > "$work/n.toml" <<EOF
[supervisor]
socket = "$sock"
[programs.p]
command = ["perl", "$gen", "$SIZE_MB", "$work/start"]
autostart = false
startsecs = 0
autorestart = "never"
stdout_logfile = "$out"
stdout_logfile_maxbytes = 0
stdout_console = "$console"
EOF
    "$NSVISOR_BIN" -c "$work/n.toml" > /dev/null 2> "$work/daemon.err" &
    daemon_pid=$!
    perl -MTime::HiRes=sleep -e 'sleep 0.005 until -S $ARGV[0]' "$sock"
    local follower=
    if [[ $follow == yes ]]; then
        "$NSVISORCTL_BIN" -s "$sock" tail -f p > /dev/null &
        follower=$!
        perl -MTime::HiRes=sleep -e 'sleep 0.2'   # let it connect
    fi
    local cpu0 end start cpu1
    cpu0=$(cpu_of "$daemon_pid")
    "$NSVISORCTL_BIN" -s "$sock" start p > /dev/null
    end=$(wait_size "$out" "$bytes")
    cpu1=$(cpu_of "$daemon_pid")
    start=$(cat "$work/start")
    [[ -n "$follower" ]] && kill "$follower" 2>/dev/null
    kill "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
    [[ -n "$follower" ]] && { wait "$follower" 2>/dev/null || true; }
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')"
    rm -f "$out"
}

echo "log throughput: ${SIZE_MB} MiB of 64-byte lines into a file, $RUNS runs each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A secs cpu
setups=("cat" "file" "file+console" "file+follow")
for ((r = 1; r <= RUNS; r++)); do
    for s in "${setups[@]}"; do
        case $s in
            cat) res=$(run_cat) ;;
            file) res=$(run_nsvisor off no) ;;
            file+console) res=$(run_nsvisor raw no) ;;
            file+follow) res=$(run_nsvisor off yes) ;;
        esac
        secs[$s]="${secs[$s]:-} ${res% *}"
        cpu[$s]="${cpu[$s]:-} ${res#* }"
    done
done
median() { tr ' ' '\n' <<< "$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cat_s=$(median "${secs[cat]}")
printf '%-14s %10s %8s %16s   %s\n' setup "MB/s" "vs cat" "CPU s/GiB" "(median of $RUNS; all wall times: s)"
for s in "${setups[@]}"; do
    m=$(median "${secs[$s]}")
    printf '%-14s %10s %8s %16s   %s\n' "$s" "$(mbps "$m")" \
        "$(awk -v c="$cat_s" -v m="$m" 'BEGIN { printf "%.2fx", c / m }')" \
        "$(per_gib "$(median "${cpu[$s]}")")" "${secs[$s]# }"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
