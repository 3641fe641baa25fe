# shellcheck shell=bash disable=SC2034
# Scenario: the boot beacon from a real dracut initramfs (docs/boot.md).
# The host builds a dracut 059 initramfs with outpost's 95outpost module for
# the guest's kernel (tests/lab/boot/dracut-initrd.sh; no network module, so
# the early check-in is skipped with the reason no-network). First boot:
# the beacon is written before outpost is even installed (never-installed);
# outpost is installed and its first check-in carries the beacon. Second
# boot: counter 2, installed and registered, the hub shows it.
LAB_DESC="boot beacon from a real dracut image: written before install, counter over a reboot, no network in the initramfs"
LAB_CI="no"
LAB_CI_SKIP="kept out of the 30-minute scripts/test budget (a dracut build on the host, two boots); scripts/lab run boot-dracut"

scenario() {
    # shellcheck source=tests/lab/boot/lib.sh
    . "$LAB_ROOT/tests/lab/boot/lib.sh"    # NAME/initrd.img and NAME/cmdline for the guest
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    lab_userdata "$s/user-data"
    printf '  boot:\n    checkin: true\n' >>"$s/user-data"
    "$LAB_ROOT/tests/lab/boot/dracut-initrd.sh" "$(lab_image_dir x86_64)" "$s/outpost" "$LAB_ROOT/dist" \
        "$LAB_RUN/vm/initrd.img" "$LAB_RUN/dracut" >"$LAB_RUN/dracut.log" 2>&1 ||
        { tail -n 20 "$LAB_RUN/dracut.log"; lab_fail "building the dracut initramfs failed"; }
    rm -rf "$LAB_RUN/dracut"
    echo "no_timer_check" >"$LAB_RUN/vm/cmdline"   # see boot-initramfs-tools.sh
    grep -q 'usr/lib/dracut/hooks/pre-pivot/90-outpost-boot.sh' "$LAB_RUN/vm/initrd.img.list" || lab_fail "no pre-pivot hook in the image"

    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "first boot failed"; }
set -eu
cat /run/outpost/boot.json >beacon1.json
./outpost install --config /mnt/lab/user-data >install.out 2>&1
n=0
until [ -s /run/outpost/boot.reported ]; do
    n=$((n + 1)); [ $n -lt 300 ] || { echo "the beacon was not reported"; exit 1; }; sleep 1
done
cat /var/lib/outpost/boot-count >count1.json
GUEST
    lab_vm_out vm
    cat "$s/beacon1.json"; echo
    lab_assert_json "$s/beacon1.json" "d['boot_count'] == 1 and d['generator'] == 'dracut' and d['stage'] == 'pre-pivot'" "beacon of boot 1"
    lab_assert_json "$s/beacon1.json" "d['root']['mounted_at'] == '/sysroot' and d['root']['present'] and not d['installed']" "root mounted, outpost not installed yet"
    lab_assert_json "$s/beacon1.json" "[r['id'] for r in d['reasons']] == ['never-installed']" "reason: never installed"
    lab_assert_json "$s/count1.json" "d['count'] == 1" "boot-count saved by the agent"
    grep -a 'outpost: boot 1 recorded' "$LAB_RUN/vm/console.log" || lab_fail "no beacon line on the console"

    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "second boot failed"; }
set -eu
cat /run/outpost/boot.json >beacon2.json
n=0
until [ -s /run/outpost/boot.reported ]; do
    n=$((n + 1)); [ $n -lt 300 ] || { echo "the beacon was not reported"; exit 1; }; sleep 1
done
cat /var/lib/outpost/boot-count >count2.json
GUEST
    cat "$s/beacon2.json"; echo
    lab_assert_json "$s/beacon2.json" "d['boot_count'] == 2 and d['installed'] and d['registered']" "beacon of boot 2"
    lab_assert_json "$s/beacon2.json" "d['checkin']['wanted'] and d['checkin']['result'] == 'skipped' and 'no-network' in [r['id'] for r in d['reasons']]" "no network in this initramfs: skipped with the reason"
    lab_assert_json "$s/count2.json" "d['count'] == 2" "boot-count after boot 2"
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_hub devices
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['last_boot']['boot_count'] == 2 and d['devices'][0]['last_boot']['generator'] == 'dracut'" "hub: last boot"
}
