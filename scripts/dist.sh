#!/usr/bin/env bash
# Release artifacts: statically linked, stripped nsvisor and nsvisorctl for
# x86_64 Linux, with man pages, shell completions and SHA256 checksums, in
#   OUTDIR/nsvisor-VERSION-x86_64-linux.tar.gz (+ .sha256 beside it)
# and unpacked in OUTDIR/nsvisor-VERSION-x86_64-linux/ (what the tests use).
#
# Usage: scripts/dist.sh [OUTDIR]     (default: ${CARGO_TARGET_DIR:-target}/tarball)
#
# The binaries link glibc statically (-C target-feature=+crt-static), so they
# run in an image with no libc and no shell. They resolve user and group names
# from the image's /etc/passwd and /etc/group (no NSS). Built with the `dist`
# profile (Cargo.toml): the release profile plus fat LTO and one codegen unit.
# The man pages and completions come from the binaries' own clap definitions
# (`cargo run -p xtask -- dist-docs`).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
out=${1:-$target_dir/tarball}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
name=nsvisor-$version-x86_64-linux

if [ "$(uname -m)" != x86_64 ]; then
    echo "dist.sh: builds for x86_64 Linux on x86_64 only (this is $(uname -m))" >&2
    exit 1
fi
if ! gcc -print-file-name=libc.a | grep -q /; then
    echo "dist.sh: static glibc (libc.a) is missing: install libc6-dev" >&2
    exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# --target keeps RUSTFLAGS off build scripts and proc macros (which cannot be
# static); the binaries land in $target_dir/$target/dist/.
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --profile dist --target "$target" -p nsvisor -p nsvisorctl
bins=$target_dir/$target/dist

stage=$out/$name
rm -rf "$stage" "$out/$name.tar.gz" "$out/$name.tar.gz.sha256"
mkdir -p "$stage/bin"
for bin in nsvisor nsvisorctl; do
    # The profile strips symbols already; strip what the linker may have kept.
    strip --strip-all -o "$stage/bin/$bin" "$bins/$bin"
    if readelf -l "$stage/bin/$bin" | grep -q 'Requesting program interpreter'; then
        echo "dist.sh: $bin is not statically linked" >&2
        exit 1
    fi
    "$stage/bin/$bin" --version
done
env -u RUSTFLAGS cargo run --locked --quiet -p xtask -- dist-docs "$stage"
cp README.md LICENSE-MIT LICENSE-APACHE "$stage/"
mkdir -p "$stage/share/doc/nsvisor"
cp docs/containers.md docs/configuration.md docs/ctl.md "$stage/share/doc/nsvisor/"
(cd "$stage" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' \
    | xargs sha256sum > SHA256SUMS)

# Reproducible: sorted names, no owner, the commit's time as every mtime.
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    -C "$out" -cf - "$name" | gzip -9n > "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo
echo "$out/$name.tar.gz"
ls -l "$stage/bin" | awk 'NR > 1 { printf "  %-12s %9d bytes\n", $9, $5 }'
printf "  %-12s %9d bytes\n" tarball "$(stat -c %s "$out/$name.tar.gz")"
