#!/bin/sh
# Runs in the guest at every boot (lab-run.service): mounts the host's 9p
# share at /mnt/lab, runs /mnt/lab/run.sh as root with its output in
# /mnt/lab/out.txt and its exit status in /mnt/lab/rc, then powers off
# unless the script created /mnt/lab/stay. Markers go to the console.
systemctl is-system-running --wait >/dev/null 2>&1
state=$(systemctl is-system-running)
mkdir -p /mnt/lab
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 lab /mnt/lab; then
    echo "LAB-ERROR no 9p share"
    systemctl poweroff
    exit 1
fi
echo "LAB-BEGIN system=$state boot=$(cat /proc/sys/kernel/random/boot_id)"
rc=127
if [ -f /mnt/lab/run.sh ]; then
    rm -f /mnt/lab/rc
    (cd /mnt/lab && exec /bin/sh ./run.sh) >/mnt/lab/out.txt 2>&1
    rc=$?
    echo "$rc" >/mnt/lab/rc.tmp && mv /mnt/lab/rc.tmp /mnt/lab/rc
fi
sync
echo "LAB-END rc=$rc"
if [ -e /mnt/lab/stay ]; then
    exit 0
fi
systemctl poweroff
