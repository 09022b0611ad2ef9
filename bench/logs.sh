#!/usr/bin/env bash
# Log throughput: one program writes SIZE_MB MiB of 64-byte lines; how fast do
# they reach a log file through nsvisor, compared with the best pipe-to-file
# copy of this machine (the limit: bench/splicecopy.c, splice(2) with the
# pipe buffer nsvisor uses) and with `cat`? All in one run, RUNS times each,
# alternating, so machine noise hits all alike.
#
# Measured per run: wall time from the generator's start until every byte is
# in the file (MB/s), and the CPU seconds of the mover (splicecopy, cat, or
# the whole nsvisor daemon) per GiB. nsvisor runs in three set-ups:
#   file          file sink only (console off): the zero-copy path (splice)
#   file+console  the same plus the console (raw, to /dev/null): the copy path
#   file+follow   file only, while `nsvisorctl tail -f` follows the stream
#                 (the timed bytes start once the follower has received a
#                 first line, so it follows all of them)
#
# Usage: bench/logs.sh            (SIZE_MB=1024 RUNS=3 by default)
#        NSVISOR_BIN=... NSVISORCTL_BIN=... to use existing binaries
#        SPLICECOPY_BIN=... (else built from bench/splicecopy.c with cc)
#        PIPE_BYTES=... (else nsvisor's PIPE_SIZE, read from its source)
# Needs: perl with Time::HiRes (Debian: perl), cc. Any failure exits non-zero.
set -euo pipefail
shopt -s inherit_errexit

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
perl -MTime::HiRes -e 1 2>/dev/null || { echo "bench/logs.sh: needs perl with Time::HiRes (apt-get install perl)" >&2; exit 1; }
if [[ -z "${PIPE_BYTES:-}" ]]; then
    size=$(sed -n 's/^const PIPE_SIZE: Option<usize> = Some(\(.*\));/\1/p' "$root/supervisor/src/logs/mod.rs")
    [[ -n "$size" ]] || { echo "bench/logs.sh: cannot read PIPE_SIZE from supervisor/src/logs/mod.rs" >&2; exit 1; }
    PIPE_BYTES=$((${size//_/}))
fi
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
if [[ -z "${SPLICECOPY_BIN:-}" ]]; then
    SPLICECOPY_BIN=$work/splicecopy
    cc -O2 -Wall -Wextra -o "$SPLICECOPY_BIN" "$root/bench/splicecopy.c"
fi

bytes=$((SIZE_MB * 1024 * 1024))
# The generator: records its start time, then writes 64-byte lines in 64 KiB
# writes. With a third argument GO it first writes one 64-byte line and waits
# until the file GO exists.
gen=$work/gen.pl
cat > "$gen" <<'EOF'
use Time::HiRes qw(time sleep);
my ($mib, $start, $go) = @ARGV;
if (defined $go) { syswrite(STDOUT, ("r" x 63) . "\n") == 64 or die "write: $!"; sleep 0.001 until -e $go; }
open(my $s, '>', $start) or die; printf $s "%.6f\n", time; close $s;
my $line = ("x" x 63) . "\n";
my $block = $line x 1024;
for (1 .. $mib * 16) { my $off = 0; while ($off < 65536) { $off += syswrite(STDOUT, $block, 65536 - $off, $off) // die "write: $!"; } }
EOF
# Waits until FILE has N bytes; prints the time. Fails when FILE stops growing for 30 s.
wait_size() {
    perl -MTime::HiRes=time,sleep -e 'my ($f, $n) = @ARGV; my ($last, $since) = (-1, time);
        while ((my $got = (-s $f) // 0) < $n) {
            ($last, $since) = ($got, time) if $got != $last;
            die "bench/logs.sh: $f stopped at $got of $n bytes\n" if time - $since > 30;
            sleep 0.0005;
        }
        printf "%.6f\n", time' "$1" "$2"
}
cpu_of() { # utime+stime of a live pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
per_gib() { awk -v c="$1" -v mb="$SIZE_MB" 'BEGIN { printf "%.2f", c * 1024 / mb }'; }

# run_copier NAME COMMAND...: the generator piped into COMMAND, which writes $work/copy.log.
run_copier() {
    local name=$1 out=$work/copy.log
    shift
    rm -f "$out"
    # The wrapper prints when the copier ended and its CPU time (user + system).
    perl "$gen" "$SIZE_MB" "$work/start" \
        | perl -MTime::HiRes=time -e 'system(@ARGV) == 0 or die "$ARGV[0] failed\n"; my @t = times;
              printf STDERR "%.6f %.2f\n", time, $t[2] + $t[3]' "$@" > "$out" 2> "$work/copy.end"
    local end cpu start
    read -r end cpu < "$work/copy.end"
    start=$(cat "$work/start")
    [[ $(stat -c %s "$out") == "$bytes" ]] || { echo "$name: short file" >&2; exit 1; }
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $cpu"
    rm -f "$out"
}

# run_nsvisor CONSOLE FOLLOW
run_nsvisor() {
    local console=$1 follow=$2 out=$work/p.log sock=$work/n.sock
    rm -f "$out" "$work/start" "$work/go" "$work/followed"
    cat > "$work/n.toml" <<EOF
[supervisor]
socket = "$sock"
[programs.p]
command = ["perl", "$gen", "$SIZE_MB", "$work/start"$([[ $follow == yes ]] && printf ', "%s"' "$work/go")]
autostart = false
startsecs = 0
autorestart = "never"
stdout_logfile = "$out"
stdout_logfile_maxbytes = 0
stdout_console = "$console"
EOF
    "$NSVISOR_BIN" -c "$work/n.toml" > /dev/null 2> "$work/daemon.err" &
    daemon_pid=$!
    # Until the control socket is there; fails when the daemon exits first or after 30 s.
    perl -MTime::HiRes=sleep -e 'my ($sock, $pid) = @ARGV; my $t = 0;
        until (-S $sock) {
            kill(0, $pid) or die "bench/logs.sh: nsvisor exited before listening\n";
            die "bench/logs.sh: no control socket after 30 s\n" if ($t += 0.005) > 30;
            sleep 0.005;
        }' "$sock" "$daemon_pid" || { cat "$work/daemon.err" >&2; exit 1; }
    local follower= reader= expect=$bytes
    if [[ $follow == yes ]]; then
        # The follower's output goes to a reader that notes the first line
        # (the follower is then registered and streaming) and drops the rest.
        rm -f "$work/follow.fifo"
        mkfifo "$work/follow.fifo"
        perl -e 'my $mark = $ARGV[0]; my $seen = "";
            while (sysread(STDIN, my $b, 1 << 20)) {
                next unless defined $mark; $seen .= $b;
                if (index($seen, "\n") >= 0) { open(my $f, ">", $mark) or die; close $f; undef $mark; }
            }' "$work/followed" < "$work/follow.fifo" &
        reader=$!
        "$NSVISORCTL_BIN" -s "$sock" tail -f p > "$work/follow.fifo" &
        follower=$!
        expect=$((bytes + 64))
    fi
    local cpu0 end start cpu1
    cpu0=$(cpu_of "$daemon_pid")
    "$NSVISORCTL_BIN" -s "$sock" start p > /dev/null
    if [[ $follow == yes ]]; then
        perl -MTime::HiRes=sleep -e 'my $t = 0; until (-e $ARGV[0]) { sleep 0.001; die "the follower got no line in 30 s\n" if ($t += 0.001) > 30 }' "$work/followed"
        touch "$work/go"
    fi
    end=$(wait_size "$out" "$expect")
    cpu1=$(cpu_of "$daemon_pid")
    start=$(cat "$work/start")
    [[ -n "$follower" ]] && kill "$follower" 2>/dev/null
    kill "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
    [[ -n "$follower" ]] && { wait "$follower" 2>/dev/null || true; }
    [[ -n "$reader" ]] && { wait "$reader" 2>/dev/null || true; }
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')"
    rm -f "$out"
}

echo "log throughput: ${SIZE_MB} MiB of 64-byte lines into a file, $RUNS runs each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); splice pipe $PIPE_BYTES bytes"
declare -A secs cpu
setups=("splice" "cat" "file" "file+console" "file+follow")
for ((r = 1; r <= RUNS; r++)); do
    for s in "${setups[@]}"; do
        case $s in
            splice) res=$(run_copier splicecopy "$SPLICECOPY_BIN" "$PIPE_BYTES" /dev/stdout) ;;
            cat) res=$(run_copier cat cat) ;;
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
