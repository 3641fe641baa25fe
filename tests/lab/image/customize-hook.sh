#!/bin/sh
# mmdebstrap customize hook: makes the root filesystem a lab guest.
set -eu
root=$1
here=$(cd "$(dirname "$0")" && pwd)
echo outpost-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 outpost-vm\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo 'LABEL=outpost-root / ext4 defaults,discard 0 1' >"$root/etc/fstab"
: >"$root/etc/machine-id"

# Network: DHCP from qemu's user network (10.0.2.15, the host at 10.0.2.2).
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/10-lab.network"
chroot "$root" systemctl enable systemd-networkd.service

# The harness: lab-run.service runs the scenario's script from the 9p share.
install -m 0755 "$here/lab-run.sh" "$root/usr/local/sbin/lab-run"
install -m 0644 "$here/lab-run.service" "$root/etc/systemd/system/lab-run.service"
chroot "$root" systemctl enable lab-run.service

# Nothing in a guest talks to the outside world: no apt timers, no NTP, no
# cron unless a scenario starts it.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer systemd-timesyncd.service
chroot "$root" systemctl disable cron.service

# Root console for `scripts/lab shell` (autologin on the serial console).
passwd -d -R "$root" root >/dev/null 2>&1 || chroot "$root" passwd -d root
for tty in ttyS0 ttyAMA0; do
    d=$root/etc/systemd/system/serial-getty@$tty.service.d
    mkdir -p "$d"
    printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,38400,9600 %%I $TERM\n' >"$d/autologin.conf"
done
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*_Packages
