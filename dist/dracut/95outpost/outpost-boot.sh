#!/bin/sh
# outpost pre-pivot hook for dracut (see docs/boot.md). dracut sources this
# file after the real root is mounted at $NEWROOT (/sysroot) and before
# initrd-switch-root.target: record the boot beacon in /run/outpost and,
# when the real root's config says outpost.boot.checkin: true, check in
# once (read-only), all within 10 seconds. Sourced, so no `exit`: the boot
# never stops here.

if [ -x /usr/sbin/outpost ]; then
	/usr/sbin/outpost -q boot --sysroot "${NEWROOT:-/sysroot}" --generator dracut \
		--stage pre-pivot --cap 10 </dev/null || :
fi
