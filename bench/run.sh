#!/usr/bin/env bash
# Benchmarks nsvisor against supervisord, horust and s6, and against the
# limits of the machine (posix_spawn, splice), and regenerates
# docs/benchmarks.md.
#
# Usage: bench/run.sh [--quick] [--release] [NSBENCH OPTIONS...]
#   (no option)  full run: release build, every peer installed (horust is
#                compiled, which takes a while), N = 1, 100, 1,000 and 10,000,
#                3 counted runs of everything (1 warm-up before N = 1, logs
#                and supervisorctl); writes bench/results/DATE.json,
#                docs/benchmarks.{md,png,json}. About 35 minutes on 2 cores
#                (the page records how long each part took).
#   --quick      smoke run: N = 1 and 50, short windows, 2 counted runs; uses the
#                debug build (what `cargo test --workspace` already built; add
#                --release for a release build); horust is used only if it is
#                already in bench/cache (else reported "not installed (quick
#                mode)"); writes bench/results/quick-DATE.{json,md,png} and
#                leaves docs/ alone. About two minutes.
#   --bin-dir DIR  use the nsvisor and nsvisorctl binaries in DIR instead of
#                building them (e.g. a release build made elsewhere)
#   Other options go to the driver, e.g. --tools nsvisor,horust
#   --workloads lifecycle,logs --runs 3 --ns 100 (see
#   `PYTHONPATH=bench python3 -m nsbench.main --help`); such a partial run
#   writes its page to bench/results/ and leaves docs/ alone.
#
# What the harness needs is installed when missing, without questions: as
# root, Debian packages with apt-get (s6 and execline, perl with Time::HiRes,
# a C compiler, python3-venv, iperf3 and socat for bench/net.sh); into
# bench/cache/ (git-ignored), supervisor 4.3.0 and matplotlib from PyPI into
# a venv and horust 0.1.14 from crates.io with cargo install. A peer that
# cannot be installed is reported as missing in the output and on the page,
# never silently skipped; a missing tool of the harness itself stops it.
# Exit status: 0, or 1 when a trial of nsvisor or of an anchor failed, or
# bench/logs.sh or bench/net.sh failed (the figures and the page are still
# written), or the harness could not run.
set -euo pipefail
start_dir=$PWD
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/bench/cache
mode=full
profile=
bin_dir=
driver_args=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) mode=quick ;;
        --release) profile=release ;;
        --bin-dir) bin_dir=$(cd "$start_dir" && cd "$2" && pwd); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) driver_args+=("$1") ;;
    esac
    shift
done
[ -n "$profile" ] || { [ $mode = quick ] && profile=debug || profile=release; }
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$cache/bin" "$root/bench/results"
missing=()
say() { printf '== %s\n' "$*" >&2; }
export DEBIAN_FRONTEND=noninteractive

# Debian packages: command -> package.
declare -A pkg_of=([s6-svscan]=s6 [execlineb]=execline [cc]=gcc [iperf3]=iperf3 [socat]=socat
                   [nsenter]=util-linux [ip]=iproute2 [ss]=iproute2)
need_pkgs=()
for cmd in "${!pkg_of[@]}"; do
    command -v "$cmd" >/dev/null || need_pkgs+=("${pkg_of[$cmd]}")
done
# Debian's perl-base has no Time::HiRes (bench/logs.sh times with it).
perl -MTime::HiRes -e 1 2>/dev/null || need_pkgs+=(perl)
python3 -c 'import venv' 2>/dev/null || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing ${need_pkgs[*]}"
        { apt-get install -y -qq "${need_pkgs[@]}" || { apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}"; }; } \
            >"$cache/apt.log" 2>&1 || say "apt-get install ${need_pkgs[*]} failed (bench/cache/apt.log)"
    else
        say "not root: cannot install ${need_pkgs[*]}"
    fi
fi
for cmd in cc perl; do
    command -v "$cmd" >/dev/null || { say "bench/run.sh needs $cmd"; exit 1; }
done
command -v s6-svscan >/dev/null && command -v execlineb >/dev/null \
    || missing+=("s6=not installed (apt-get install s6 failed or not root)")

if [ -n "$bin_dir" ]; then
    say "using the nsvisor binaries in $bin_dir"
else
    say "building nsvisor ($profile)"
    if [ $profile = release ]; then cargo build --release --workspace; else cargo build --workspace; fi
    bin_dir=$target/$profile
fi

say "building spawnlimit, splicecopy, linewriter and probeloop"
for prog in spawnlimit splicecopy linewriter probeloop; do
    cc -O2 -Wall -Wextra -o "$cache/bin/$prog" "$root/bench/$prog.c"
done

# supervisord (and matplotlib for the chart) in a venv.
venv=$cache/venv
ensure_venv() {
    [ -x "$venv/bin/python" ] && return 0
    nice -n 10 python3 -m venv "$venv" 2>"$cache/venv.log" && return 0
    rm -rf "$venv"
    # Debian ships venv separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing python3-venv"
        { apt-get install -y -qq python3-venv || { apt-get update -qq && apt-get install -y -qq python3-venv; }; } \
            >>"$cache/apt.log" 2>&1 && nice -n 10 python3 -m venv "$venv" 2>>"$cache/venv.log" && return 0
        rm -rf "$venv"
    fi
    return 1
}
if ensure_venv; then
    if [ "$("$venv/bin/supervisord" --version 2>/dev/null)" != 4.3.0 ]; then
        say "installing supervisor 4.3.0 into bench/cache/venv"
        nice -n 10 "$venv/bin/pip" install -q supervisor==4.3.0 >"$cache/supervisor-install.log" 2>&1 \
            || missing+=("supervisord=pip install supervisor==4.3.0 failed (bench/cache/supervisor-install.log)")
    fi
    if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        say "installing matplotlib into bench/cache/venv"
        nice -n 10 "$venv/bin/pip" install -q matplotlib >"$cache/matplotlib-install.log" 2>&1 \
            || say "matplotlib could not be installed: the page will have no chart"
    fi
    python=$venv/bin/python
else
    missing+=("supervisord=no Python venv could be made (bench/cache/venv.log)")
    python=python3
fi

# horust, compiled from crates.io.
if [ ! -x "$cache/horust/bin/horust" ]; then
    if [ $mode = quick ]; then
        missing+=("horust=not installed (quick mode installs no compiled peer; a full bench/run.sh does)")
    else
        say "installing horust 0.1.14 into bench/cache/horust (compiles; takes a while)"
        env -u CARGO_TARGET_DIR nice -n 10 cargo install horust --version 0.1.14 --locked \
            --root "$cache/horust" >"$cache/horust-install.log" 2>&1 \
            || missing+=("horust=cargo install horust --version 0.1.14 failed (bench/cache/horust-install.log)")
    fi
fi
for m in "${missing[@]}"; do say "MISSING ${m%%=*}: ${m#*=}"; done

stamp=$(date +%Y-%m-%dT%H%M%S)
name=$stamp
[ $mode = quick ] && name=quick-$stamp
json=$root/bench/results/$name.json
args=(--mode "$mode" --bin-dir "$bin_dir" --cache "$cache" --out "$json"
      --spawnlimit "$cache/bin/spawnlimit" --linewriter "$cache/bin/linewriter"
      --probeloop "$cache/bin/probeloop" --splicecopy "$cache/bin/splicecopy"
      --bench-dir "$root/bench")
for m in "${missing[@]}"; do args+=(--missing "$m"); done

export PYTHONDONTWRITEBYTECODE=1
say "running the workloads ($mode)"
PYTHONPATH=$root/bench "$python" -m nsbench.main "${args[@]}" "${driver_args[@]}"

if [ $mode = quick ] || [ ${#driver_args[@]} -gt 0 ]; then
    # A smoke run or a partial one (driver options given) leaves docs/ alone.
    page=$root/bench/results/$name.md
    png=$root/bench/results/$name.png
else
    page=$root/docs/benchmarks.md
    png=$root/docs/benchmarks.png
    cp "$json" "$root/docs/benchmarks.json"
fi
PYTHONPATH=$root/bench "$python" -m nsbench.report "$json" "$page" "$png"
say "figures: $json"
say "page: $page"
for m in "${missing[@]}"; do say "MISSING ${m%%=*}: ${m#*=}"; done
PYTHONPATH=$root/bench "$python" -m nsbench.check "$json"
