#!/bin/bash
# Builds a dracut initramfs with outpost's module for the lab guest's
# kernel, on the host (dracut-core 059, the same Debian 12 userland as the
# guest): the kernel modules are copied out of the cached image with
# debugfs (no mount, no loop device), and dracut runs in a private mount
# namespace with an overlay on /usr/lib that holds the 95outpost module, so
# the host's own files are never touched.
# Usage: dracut-initrd.sh IMAGE_DIR OUTPOST_BINARY DIST_DIR OUT_IMG WORKDIR
set -euo pipefail
img=$1 bin=$2 dist=$3 out=$4 work=$5
if [ "${OUTPOST_IN_NS:-}" != 1 ]; then
	mkdir -p "$work"
	kver=$(sed -n 's/^linux-image-\([0-9].*-\(amd64\|arm64\)\) .*/\1/p' "$img/packages.txt" | head -1)
	[ -n "$kver" ] || { echo "dracut-initrd: no kernel in $img/packages.txt" >&2; exit 1; }
	rm -rf "$work/kroot" "$work/disk.raw"
	mkdir -p "$work/kroot/lib/modules"
	qemu-img convert -O raw "$img/base.qcow2" "$work/disk.raw"
	debugfs -R "rdump /usr/lib/modules/$kver $work/kroot/lib/modules" "$work/disk.raw" >/dev/null 2>&1
	rm -f "$work/disk.raw"
	[ -d "$work/kroot/lib/modules/$kver/kernel" ] || { echo "dracut-initrd: no modules of $kver in the image" >&2; exit 1; }
	exec unshare -m --propagation private env OUTPOST_IN_NS=1 KVER="$kver" "$0" "$@"
fi
: "${KVER:?}"
mkdir -p "$work/ov/up" "$work/ov/wk"
mount -t overlay ov-usrlib -o "lowerdir=/usr/lib,upperdir=$work/ov/up,workdir=$work/ov/wk" /usr/lib
install -D -m 0755 "$dist/dracut/95outpost/module-setup.sh" /usr/lib/dracut/modules.d/95outpost/module-setup.sh
install -D -m 0755 "$dist/dracut/95outpost/outpost-boot.sh" /usr/lib/dracut/modules.d/95outpost/outpost-boot.sh
OUTPOST_BIN=$bin dracut --force --quiet --no-hostonly --kmoddir "$work/kroot/lib/modules/$KVER" \
	--modules "base systemd systemd-initrd dracut-systemd udev-rules kernel-modules rootfs-block fs-lib outpost" \
	--drivers "virtio_scsi virtio_pci sd_mod ext4" --compress zstd "$out" "$KVER"
lsinitrd "$out" >"$out.list"
