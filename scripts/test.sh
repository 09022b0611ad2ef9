#!/usr/bin/env bash
# The whole test suite: installs what the tests need (as root, with apt),
# then runs formatting and lint checks, a short fuzzing round
# (FUZZ_SECONDS per target, default 20), a smoke run of the benchmark
# harness, unit tests and end-to-end tests.
# Usage: scripts/test.sh            (from the repository root)
# Root-only tests (namespaces, user switching) skip without root, except
# when CI is set: then they must run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v unshare >/dev/null || need_pkgs+=(util-linux)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v nft >/dev/null || need_pkgs+=(nftables)
command -v sysctl >/dev/null || need_pkgs+=(procps)
command -v strip >/dev/null || need_pkgs+=(binutils)
[ -f "$(gcc -print-file-name=libc.a 2>/dev/null)" ] || need_pkgs+=(libc6-dev)
command -v script >/dev/null || need_pkgs+=(bsdutils)
# The release binaries' image tests: Debian's engine, and a static busybox
# for the programs' shell inside the images (tests/tests/docker.rs, dist.rs).
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
{ [ -x /bin/busybox ] && ! readelf -l /bin/busybox 2>/dev/null | grep -q interpreter; } \
    || need_pkgs+=(busybox-static)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing: ${need_pkgs[*]}"
        apt-get update -qq
        # No package may start a service (docker.io's system engine would add
        # a bridge and firewall rules): the tests start their own engine.
        policy=/usr/sbin/policy-rc.d
        made_policy=
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
        [ -z "$made_policy" ] || rm -f "$policy"
    else
        echo "missing tools: ${need_pkgs[*]} (install them, or run as root to have them installed)" >&2
    fi
fi

# The real supervisorctl and supervisord (supervisor 4.3.0 from PyPI), which
# tests/tests/supervisorctl.rs runs against nsvisor and compares.
venv=${CARGO_TARGET_DIR:-$PWD/target}/supervisor-venv
if [ "$("$venv/bin/supervisord" --version 2>/dev/null)" != 4.3.0 ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q supervisor==4.3.0
fi
export NSVISOR_TEST_SUPERVISOR_BIN=$venv/bin

for tool in fmt clippy; do
    cargo "$tool" --version >/dev/null 2>&1 || rustup component add "$([ "$tool" = fmt ] && echo rustfmt || echo clippy)"
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The fuzz targets (fuzz/, their own workspace; docs/reliability.md): formatted
# like the rest, and a short round of each, so a parser that panics, hangs or
# runs out of memory on some input fails the suite.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
# The release tarball; its unpacked tree is what tests/tests/dist.rs and
# tests/tests/docker.rs put into root filesystems and images.
scripts/dist.sh
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
export NSVISOR_DIST_DIR=${CARGO_TARGET_DIR:-$PWD/target}/tarball/nsvisor-$version-x86_64-linux
# Benchmark harness smoke run: proves it still works; no timing is judged.
bench/run.sh --quick
cargo test --workspace
