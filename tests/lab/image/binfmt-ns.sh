#!/usr/bin/env bash
# Runs a command (the arm64 image build) in a private user + mount namespace
# with its own binfmt_misc (Linux >= 6.7), where qemu-aarch64 from
# qemu-user-static is registered: the machine's global binfmt_misc is never
# touched. All ids map 1:1 so apt's _apt user and chowns still work.
# Usage: binfmt-ns.sh COMMAND [ARG...]
set -euo pipefail
if [ "${1:-}" = --inside ]; then
    shift
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || { echo "binfmt-ns.sh: $conf missing (qemu-user-static)" >&2; exit 2; }
    cat "$conf" >/proc/sys/fs/binfmt_misc/register
    exec "$@"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/go"
# shellcheck disable=SC2016
unshare --user --mount --propagation private -- /bin/sh -c 'read -r _ <"$0"; exec "$@"' \
    "$tmp/go" "$0" --inside "$@" &
pid=$!
for _ in $(seq 100); do
    [ "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/self/ns/user)" ] && break
    sleep 0.05
done
echo '0 0 4294967295' >"/proc/$pid/uid_map"
echo '0 0 4294967295' >"/proc/$pid/gid_map"
echo go >"$tmp/go"
wait "$pid"
