#!/bin/sh
# mmdebstrap essential hook: before the kernel's postinst makes the initrd,
# keep it small (MODULES=list): a full initrd takes many minutes under
# qemu-user for arm64. FSTYPE because the fsck hook cannot read LABEL= in a
# chroot.
set -eu
root=$1
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
printf 'MODULES=list\nFSTYPE=ext4\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/outpost-lab"
printf '%s\n' virtio_pci virtio_mmio virtio_scsi sd_mod virtio_blk virtio_net ext4 \
    >"$root/usr/share/initramfs-tools/modules.d/outpost-lab"
