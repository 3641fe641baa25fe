#!/usr/bin/env bash
# Builds one lab guest image: a Debian 12 root filesystem made by mmdebstrap
# (kernel, initramfs made inside), an ext4 disk made from it without loop
# devices or mounts, compressed to a zstd qcow2 base, plus the kernel and
# initrd for direct boot.
# Usage: build.sh ARCH OUTDIR MIRROR   (ARCH: amd64 or arm64)
# For arm64 run it through binfmt-ns.sh (qemu-user inside a private user
# namespace). Writes OUTDIR/{base.qcow2,kernel,initrd.img,packages.txt}.
set -euo pipefail
arch=$1 out=$2 mirror=$3
here=$(cd "$(dirname "$0")" && pwd)
sec=${mirror%/debian}/debian-security

case $arch in
amd64) kernel_pkg=linux-image-amd64 extra=() ;;
arm64) kernel_pkg=linux-image-arm64 extra=(--skip=check/qemu) ;;
*) echo "build.sh: unknown arch $arch" >&2; exit 2 ;;
esac

mkdir -p "$out"
rootfs=$out/rootfs
rm -rf "$rootfs" "$out/disk.raw"
pkgs=$(grep -v '^#' "$here/packages" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
mmdebstrap --mode=root --arch="$arch" --variant=apt --quiet "${extra[@]}" \
    --essential-hook="$here/essential-hook.sh" \
    --include="$kernel_pkg,$pkgs" \
    --customize-hook="$here/customize-hook.sh" \
    bookworm "$rootfs" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $sec bookworm-security main"

dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$out/packages.txt"
kernels=("$rootfs"/boot/vmlinuz-*) initrds=("$rootfs"/boot/initrd.img-*)
cp "${kernels[0]}" "$out/vmlinuz"
cp "${initrds[0]}" "$out/initrd.img"
kernel=$out/vmlinuz
if [ "$arch" = amd64 ]; then
    # The uncompressed vmlinux boots through PVH, about 4 s faster under
    # TCG than the bzImage. It is the first xz stream in the bzImage: cut
    # it out into a file first (xz --single-stream stops reading at the end
    # of the stream, so a pipe from tail would die of SIGPIPE and, under
    # pipefail, fail the step), then check it is an ELF.
    off=$(grep -abo $'\xfd\x37\x7a\x58\x5a\x00' "$out/vmlinuz" | head -1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then
        tail -c +$((off + 1)) "$out/vmlinuz" >"$out/vmlinux.xz"
        xz -dc --single-stream "$out/vmlinux.xz" >"$out/vmlinux"
        rm -f "$out/vmlinux.xz"
    fi
    if [ -s "$out/vmlinux" ] && [ "$(head -c 4 "$out/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        kernel=$out/vmlinux
    else
        echo "build.sh: no xz-compressed vmlinux in the bzImage; guests boot the bzImage (slower)" >&2
        rm -f "$out/vmlinux"
    fi
fi
ln -sf "$(basename "$kernel")" "$out/kernel"

# The filesystem is 15 GiB (>= 10 GB free for `check`'s space test); the
# disk each guest sees is sized by its shape through the overlay.
truncate -s 15G "$out/disk.raw"
mkfs.ext4 -q -F -L outpost-root -E lazy_itable_init=1,lazy_journal_init=1 -d "$rootfs" "$out/disk.raw"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$out/disk.raw" "$out/base.qcow2.tmp"
mv "$out/base.qcow2.tmp" "$out/base.qcow2"
rm -rf "$rootfs" "$out/disk.raw"
