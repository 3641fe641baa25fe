#!/bin/bash
# Builds a REAL initramfs-tools image (mkinitramfs) and a REAL dracut image
# (dracut --no-kernel) with outpost's hook and module, on a host that has
# outpost installed with a token, a credential and an install secret, then
# unpacks both (unmkinitramfs, lsinitrd --unpack) for the caller to scan.
#
# Everything happens in a private mount namespace: /etc, /usr/lib and
# /var/lib are overlays on temp dirs and /boot is a tmpfs, so the host's
# real /boot, /etc and /lib/modules are never touched. Needs root and the
# Debian packages initramfs-tools, dracut-core, cpio, zstd.
#
# Usage: real-images.sh WORKDIR OUTPOST_BINARY DIST_DIR SECRETS_FILE
#   SECRETS_FILE holds three lines: token, credential, install secret.
# Leaves in WORKDIR: itools.img, itools/ (unpacked), itools.list,
# itools.refused.log, itools.rogue/ (a control image with a planted
# secret), dracut.img, dracut/ (unpacked), dracut.list, modes.txt.
set -euo pipefail
WORK=$1
BIN=$2
DIST=$3
SECRETS=$4
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ "${OUTPOST_IN_NS:-}" != 1 ]; then
	exec unshare -m --propagation private env OUTPOST_IN_NS=1 "$0" "$@"
fi

KVER=6.1.0-outpost-test
{
	read -r TOKEN
	read -r CRED
	read -r ISECRET
} <"$SECRETS"

overlay() {
	local dir=$1 name=$2
	mkdir -p "$WORK/ov/$name/up" "$WORK/ov/$name/wk"
	mount -t overlay "ov-$name" -o "lowerdir=$dir,upperdir=$WORK/ov/$name/up,workdir=$WORK/ov/$name/wk" "$dir"
}
overlay /etc etc
overlay /usr/lib usrlib
overlay /var/lib varlib
mount -t tmpfs -o size=256m,mode=0755 boot-tmp /boot

# A made-up kernel: empty module lists, a config that says initrd + gzip.
mkdir -p "/usr/lib/modules/$KVER"
: >"/usr/lib/modules/$KVER/modules.order"
: >"/usr/lib/modules/$KVER/modules.builtin"
depmod "$KVER"
printf 'CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n' >"/boot/config-$KVER"

# outpost installed on this "host", secrets and all.
install -d -m 0755 /etc/outpost
install -d -m 0700 /var/lib/outpost
umask 077
printf '#cloud-config\nstylus:\n  site:\n    paletteEndpoint: hub.example.test\n    edgeHostToken: %s\noutpost:\n  boot:\n    checkin: true\n' "$TOKEN" >/etc/outpost/user-data
printf '%s\n' "$CRED" >/var/lib/outpost/credential
printf '%s\n' "$ISECRET" >/var/lib/outpost/install-secret
umask 022
install -m 0755 "$BIN" /usr/local/bin/outpost

# ---- initramfs-tools ----
CONFDIR=$WORK/itools-conf
rm -rf "$CONFDIR"
cp -a /etc/initramfs-tools "$CONFDIR"
sed -i 's/^MODULES=.*/MODULES=list/' "$CONFDIR/initramfs.conf"
install -D -m 0755 "$DIST/initramfs-tools/hooks/outpost" "$CONFDIR/hooks/outpost"
install -D -m 0755 "$DIST/initramfs-tools/scripts/local-bottom/outpost" "$CONFDIR/scripts/local-bottom/outpost"
install -D -m 0644 "$DIST/initramfs-tools/conf.d/outpost" "$CONFDIR/conf.d/outpost"
echo "FSTYPE=ext4" >"$CONFDIR/conf.d/fstype"
mkinitramfs -d "$CONFDIR" -o "$WORK/itools.img" "$KVER"
unmkinitramfs "$WORK/itools.img" "$WORK/itools"
lsinitramfs "$WORK/itools.img" >"$WORK/itools.list"

# Asked to include the user-data: the hook refuses and the build fails.
printf 'OUTPOST_INITRAMFS_FILES="/etc/outpost/user-data"\n' >/etc/outpost/initramfs.conf
if mkinitramfs -d "$CONFDIR" -o "$WORK/itools-refused.img" "$KVER" >"$WORK/itools.refused.log" 2>&1; then
	echo "mkinitramfs succeeded although the hook was asked to copy the user-data" >&2
	exit 1
fi
rm -f /etc/outpost/initramfs.conf

# Control: a rogue hook (not outpost's) copies the user-data; the caller's
# scan must find the token in this image, or the scan proves nothing.
cat >"$CONFDIR/hooks/zz-rogue" <<'ROGUE'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
mkdir -p "${DESTDIR}/rogue" && cp /etc/outpost/user-data "${DESTDIR}/rogue/"
ROGUE
chmod 0755 "$CONFDIR/hooks/zz-rogue"
mkinitramfs -d "$CONFDIR" -o "$WORK/itools-rogue.img" "$KVER"
unmkinitramfs "$WORK/itools-rogue.img" "$WORK/itools.rogue"
rm -f "$CONFDIR/hooks/zz-rogue"

# ---- dracut ----
install -D -m 0755 "$DIST/dracut/95outpost/module-setup.sh" /usr/lib/dracut/modules.d/95outpost/module-setup.sh
install -D -m 0755 "$DIST/dracut/95outpost/outpost-boot.sh" /usr/lib/dracut/modules.d/95outpost/outpost-boot.sh
printf 'add_dracutmodules+=" outpost "\n' >/etc/dracut.conf.d/outpost.conf
dracut --no-kernel --force --no-hostonly --quiet --modules "base outpost" "$WORK/dracut.img" "$KVER"
mkdir -p "$WORK/dracut"
(cd "$WORK/dracut" && lsinitrd --unpack "$WORK/dracut.img")
lsinitrd "$WORK/dracut.img" >"$WORK/dracut.list"

stat -c '%a %n' "$WORK/itools.img" "$WORK/dracut.img" >"$WORK/modes.txt"
echo "real-images: done"
