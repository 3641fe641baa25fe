# shellcheck shell=bash disable=SC2034
# Scenario: the boot beacon from a real initramfs-tools initramfs
# (docs/boot.md). The guest installs outpost with --initramfs
# initramfs-tools and outpost.boot.checkin: true; install runs the guest's
# real update-initramfs -u; the guest then boots that initramfs (with ip=dhcp
# for the early check-in) three times: the beacon has boot counter 1, then
# 2; the hub's request log has the early check-in before the root's
# outpost.service started; with the hub down the boot completes within the
# cap and the beacon says hub-down.
LAB_DESC="boot beacon from a real initramfs-tools image: counter over reboots, early check-in, hub down"
LAB_CI="yes"

boot_guest_script() { # what boots 2..4 run: wait for the agent (unless the hub is down), copy the facts
    cat <<'GUEST'
set -eu
if [ ! -e /mnt/lab/hub-down ]; then
    n=0
    until [ "$(journalctl -q -b -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
        n=$((n + 1)); [ $n -lt 300 ] || { echo "no check-in in this boot"; exit 1; }; sleep 1
    done
    n=0
    until [ -s /run/outpost/boot.reported ]; do
        n=$((n + 1)); [ $n -lt 60 ] || { echo "the beacon was not reported"; exit 1; }; sleep 1
    done
    cat /run/outpost/boot.reported >reported
    cat /var/lib/outpost/boot-count >count.json
fi
cat /run/outpost/boot.json >beacon.json
cat /proc/sys/kernel/random/boot_id >boot_id
systemctl show outpost.service -p ExecMainStartTimestamp --timestamp=unix --value >svc.start
stat -c %a /run/outpost/boot.json >beacon.mode
GUEST
}

scenario() {
    # shellcheck source=tests/lab/boot/lib.sh
    . "$LAB_ROOT/tests/lab/boot/lib.sh"    # NAME/initrd.img and NAME/cmdline for the guest
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    lab_userdata "$s/user-data"
    printf '  boot:\n    checkin: true\n' >>"$s/user-data"

    # Boot 1: install with the initramfs-tools hook; install regenerates the
    # initramfs with the guest's own update-initramfs.
    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "first boot: install with --initramfs failed"; }
set -eu
mkdir -p /etc/outpost
echo OUTPOST_BOOT_CAP=30 >/etc/outpost/initramfs.conf
./outpost install --config /mnt/lab/user-data --initramfs initramfs-tools >install.out 2>&1
k=$(uname -r)
cp "/boot/initrd.img-$k" initrd.out
stat -c %a "/boot/initrd.img-$k" >initrd.mode
lsinitramfs "/boot/initrd.img-$k" | grep outpost >initrd.list
n=0
until [ "$(journalctl -q -b -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
    n=$((n + 1)); [ $n -lt 300 ] || { echo "no check-in"; exit 1; }; sleep 1
done
GUEST
    lab_vm_out vm
    cat "$s/install.out"
    grep -q 'run         /usr/sbin/update-initramfs -u' "$s/install.out" || lab_fail "install did not regenerate the initramfs"
    lab_assert_eq "$(cat "$s/initrd.mode")" 600 "mode of the regenerated initramfs (UMASK=0077)"
    grep -qx 'usr/sbin/outpost' "$s/initrd.list" || lab_fail "no outpost binary in the initramfs"
    grep -qx 'scripts/local-bottom/outpost' "$s/initrd.list" || lab_fail "no boot script in the initramfs"
    cp "$s/initrd.out" "$LAB_RUN/vm/initrd.img"
    rm -f "$s/initrd.out"
    # no_timer_check: a heavily loaded TCG host once made the kernel panic
    # with "IO-APIC + timer doesn't work" before the initramfs ran.
    echo "ip=dhcp no_timer_check" >"$LAB_RUN/vm/cmdline"

    # Boot 2: the beacon (counter 1) and the early check-in.
    local t_boot2
    t_boot2=$(date +%s%3N)
    boot_guest_script | lab_vm_boot vm || { lab_vm_out vm; lab_fail "second boot failed"; }
    lab_vm_out vm
    cat "$s/beacon.json"; echo
    lab_assert_json "$s/beacon.json" "d['boot_count'] == 1 and d['generator'] == 'initramfs-tools' and d['stage'] == 'local-bottom'" "beacon of boot 2"
    lab_assert_json "$s/beacon.json" "d['root']['present'] and d['root']['mounted_at'] == '/root' and d['network']" "root and network in the initramfs"
    lab_assert_json "$s/beacon.json" "d['checkin']['result'] == 'ok'" "the early check-in"
    lab_assert_eq "$(cat "$s/reported")" "$(cat "$s/boot_id")" "boot.reported after the agent's check-in"
    lab_assert_json "$s/count.json" "d['count'] == 1" "boot-count saved by the agent"
    lab_assert_eq "$(cat "$s/beacon.mode")" 644 "beacon mode"
    grep -a 'outpost: boot 1 recorded' "$LAB_RUN/vm/console.log" || lab_fail "no beacon line on the console"
    # The hub's request log: a check-in after boot 2 began and before the
    # root's outpost.service started (guest clock: qemu's RTC is the host's).
    local svc_ms early
    svc_ms=$(($(tr -d '@' <"$s/svc.start") * 1000))
    early=$(python3 -c "
import json,sys
for l in open('$LAB_RUN/hub/requests.jsonl'):
    r=json.loads(l)
    if r['path']=='/outpost/v1/checkin' and r['status']==200 and $t_boot2 < r['t_ms'] < $svc_ms:
        print(r['t_ms']); break")
    [ -n "$early" ] || lab_fail "no check-in on the hub between the start of boot 2 and outpost.service ($svc_ms)"
    lab_log "early check-in at $early ms, outpost.service started at $svc_ms ms ($(((svc_ms - early) / 1000)) s later)"
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_hub devices
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['last_boot']['boot_count'] == 1" "hub: last boot"

    # Boot 3: the counter goes to 2.
    boot_guest_script | lab_vm_boot vm || { lab_vm_out vm; lab_fail "third boot failed"; }
    lab_assert_json "$s/beacon.json" "d['boot_count'] == 2 and d['checkin']['result'] == 'ok'" "beacon of boot 3"
    lab_assert_json "$s/count.json" "d['count'] == 2" "boot-count after boot 3"
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['last_boot']['boot_count'] == 2" "hub: last boot after boot 3"

    # Boot 4: the hub is down; the boot completes and the beacon says why.
    lab_hub_stop
    touch "$s/hub-down"
    boot_guest_script | lab_vm_boot vm || { lab_vm_out vm; lab_fail "boot with the hub down failed"; }
    cat "$s/beacon.json"; echo
    lab_assert_json "$s/beacon.json" "d['boot_count'] == 3 and d['checkin']['result'] in ('failed', 'timeout')" "beacon with the hub down"
    lab_assert_json "$s/beacon.json" "any(r['id'] in ('hub-down', 'checkin-timeout') for r in d['reasons'])" "the reason"
    lab_assert_json "$s/beacon.json" "d['checkin']['elapsed_ms'] <= 30000" "within the cap"
}
