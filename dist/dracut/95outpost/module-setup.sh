#!/bin/bash
# dracut module "outpost" (installed as
# /usr/lib/dracut/modules.d/95outpost/module-setup.sh by
# `outpost install --initramfs`; see docs/boot.md).
#
# Puts the static outpost binary into the initramfs and a pre-pivot hook
# that records the boot beacon (and, when the real root's config asks for
# it, checks in once) after the real root is mounted at /sysroot and before
# initrd-switch-root.target. Nothing else goes in: the config, the device
# credential, the install secret and every key stay on the real root.
# dracut writes its images 0600 (umask 077).
#
# Included when /etc/dracut.conf.d/outpost.conf says
# add_dracutmodules+=" outpost ". For the early check-in the image also
# needs a network module and the kernel command line rd.neednet=1 ip=dhcp.

# Which binary to copy (the installed agent).
outpost_bin() {
	echo "${OUTPOST_BIN:-/usr/local/bin/outpost}"
}

check() {
	[ -x "$(outpost_bin)" ] || return 1
	# Only when asked for (add_dracutmodules), never by host-only guessing.
	return 255
}

depends() {
	return 0
}

install() {
	inst_simple "$(outpost_bin)" /usr/sbin/outpost
	# shellcheck disable=SC2154 # moddir is set by dracut
	inst_hook pre-pivot 90 "$moddir/outpost-boot.sh"
}
