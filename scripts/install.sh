#!/bin/sh
# outpost bootstrap: fetch the agent for this machine, verify it against
# SHA256SUMS, then run `outpost install` with the operator's user-data.
#
# Usage:
#   OUTPOST_URL=https://example.com/outpost/0.1.0 USERDATA=./user-data \
#       sh install.sh [--root DIR] [--config FILE|URL] [-- INSTALL-ARGS...]
#   sh install.sh --offline DIR [--root DIR] [--config FILE] [-- ...]
#
#   --offline DIR   install from an unpacked airgap bundle (no network)
#   --root DIR      install into the tree under DIR (an OS image) instead of /
#   --config X      the user-data: a file or an https URL (default: $USERDATA)
#   -- ARGS         passed to `outpost install` unchanged
#                   (e.g. -- --scheduler cron --dry-run)
#
# Environment: OUTPOST_URL (the folder holding SHA256SUMS and the binaries;
# https, or http on loopback only), USERDATA, OUTPOST_ARCH (instead of
# `uname -m`), and the proxy variables curl or wget honour (https_proxy,
# no_proxy, ...).
# Exit status: 2 usage, 1 download or checksum failure, else outpost's.
set -eu

prog=install.sh
die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}
usage() {
    printf '%s: %s (see the comment at the top of install.sh)\n' "$prog" "$*" >&2
    exit 2
}

offline=
root=
config=${USERDATA:-}
while [ $# -gt 0 ]; do
    case $1 in
        --offline) [ $# -ge 2 ] || usage "--offline needs a directory"; offline=$2; shift 2 ;;
        --root) [ $# -ge 2 ] || usage "--root needs a directory"; root=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || usage "--config needs a file or URL"; config=$2; shift 2 ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        --) shift; break ;;
        *) usage "unknown argument $1" ;;
    esac
done
[ -n "$config" ] || usage "no user-data: set USERDATA or give --config"

arch=${OUTPOST_ARCH:-$(uname -m)}
case $arch in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "unsupported architecture $arch (outpost is built for x86_64 and aarch64)" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/outpost-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fetch() { # URL OUT
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 --connect-timeout 20 --max-time 600 -o "$2" "$1" ||
            die "downloading $1 failed (curl)"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -T 60 -t 3 -O "$2" "$1" || die "downloading $1 failed (wget)"
    else
        die "neither curl nor wget is installed; use --offline with a bundle"
    fi
}

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d ' ' -f 1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d ' ' -f 1
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
    else
        die "no sha256sum, shasum or openssl to verify the download"
    fi
}

if [ -n "$offline" ]; then
    [ -f "$offline/SHA256SUMS" ] || die "$offline/SHA256SUMS not found (is $offline an unpacked bundle?)"
    cp "$offline/SHA256SUMS" "$tmp/SHA256SUMS"
else
    base=${OUTPOST_URL:-}
    [ -n "$base" ] || usage "set OUTPOST_URL to the release folder, or use --offline DIR"
    base=${base%/}
    case $base in
        https://*) ;;
        http://127.0.0.1:* | http://127.0.0.1/* | http://localhost:* | http://localhost/* | http://\[::1\]:* | http://\[::1\]/*) ;;
        *) die "OUTPOST_URL must be https:// (plain http only on loopback)" ;;
    esac
    fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS"
fi

line=$(grep -E "^[0-9a-f]{64}  outpost-[A-Za-z0-9._+-]+-${arch}-linux-musl\$" "$tmp/SHA256SUMS" | head -n 1 || true)
[ -n "$line" ] || die "SHA256SUMS lists no outpost binary for $arch"
want=${line%% *}
name=${line#*  }

if [ -n "$offline" ]; then
    [ -f "$offline/$name" ] || die "$offline/$name not found"
    cp "$offline/$name" "$tmp/outpost"
else
    fetch "$base/$name" "$tmp/outpost"
fi
got=$(sha256 "$tmp/outpost")
[ "$got" = "$want" ] || die "checksum mismatch for $name: SHA256SUMS says $want, the file is $got; refusing to install"
chmod 0755 "$tmp/outpost"
echo "$prog: $name verified (sha256 $want)"

set +e
if [ -n "$root" ]; then
    "$tmp/outpost" install --config "$config" --root "$root" "$@"
else
    "$tmp/outpost" install --config "$config" "$@"
fi
rc=$?
set -e
exit "$rc"
