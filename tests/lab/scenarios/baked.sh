# shellcheck shell=bash disable=SC2034
# Scenario: a baked image. A builder guest mounts a fresh copy of the image
# (a second disk) and runs `outpost install --root` into it with no network
# at all (unshare -n); nothing is started. The baked disk then boots as its
# own guest: outpost-firstboot.service registers the host on its first boot
# with no step on the guest, writes its marker, and outpost.service takes
# over.
LAB_DESC="baked image: install --root offline, first boot registers with no step on the guest"
LAB_CI="no"
LAB_CI_SKIP="kept out of the 30-minute scripts/test budget"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new baked fit x86_64
    lab_vm_new builder fit x86_64
    echo "$LAB_RUN/baked/disk.qcow2" >"$LAB_RUN/builder/disk2"
    local b=$LAB_RUN/builder/share s=$LAB_RUN/baked/share
    lab_userdata "$b/user-data"
    lab_vm_boot builder <<'GUEST' || { lab_vm_out builder; lab_fail "baking the image failed"; }
set -eu
mkdir -p /mnt/img
mount /dev/vda /mnt/img
test -f /mnt/img/etc/os-release
unshare -n ./outpost install --root /mnt/img --config /mnt/lab/user-data
ls -la /mnt/img/etc/systemd/system /mnt/img/etc/systemd/system/multi-user.target.wants
test ! -e /mnt/img/var/lib/outpost/host-id && echo "no host ID in the image: good"
test ! -e /mnt/img/var/lib/outpost/credential && echo "no credential in the image: good"
umount /mnt/img
GUEST
    lab_vm_out builder
    rm "$LAB_RUN/builder/disk2"
    # No hub request yet: the bake was offline.
    [ ! -s "$LAB_RUN/hub/requests.jsonl" ] || lab_fail "the hub saw requests during the bake"

    # First boot: the guest script only observes.
    lab_vm_boot baked <<'GUEST' || { lab_vm_out baked; lab_fail "the baked guest's script failed"; }
set +e
i=0
while systemctl is-active -q outpost-firstboot.service || [ "$(systemctl show -p ActiveState --value outpost-firstboot.service)" = activating ]; do
    i=$((i + 1)); [ $i -lt 300 ] || break; sleep 1
done
systemctl show -p Result --value outpost-firstboot.service >firstboot.result
systemctl show -p ExecMainStatus --value outpost-firstboot.service >firstboot.status
test -e /var/lib/outpost/firstboot-done && echo yes >firstboot.done
journalctl -q -b -u outpost-firstboot.service -o cat --no-pager
cat /var/lib/outpost/host-id >host-id
i=0
until [ "$(journalctl -q -b -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
    i=$((i + 1)); [ $i -lt 180 ] || break; sleep 1
done
systemctl is-active outpost.service >agent.active
GUEST
    lab_vm_out baked
    lab_assert_eq "$(cat "$s/firstboot.result")" success "outpost-firstboot.service Result"
    lab_assert_eq "$(cat "$s/firstboot.status")" 0 "outpost checkin's exit status in outpost-firstboot"
    lab_assert_eq "$(cat "$s/firstboot.done" 2>/dev/null)" yes "the firstboot-done marker"
    lab_assert_eq "$(cat "$s/agent.active")" active "outpost.service after the first boot"
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "[x['host_id'] for x in d['devices']] == ['$(cat "$s/host-id")']" \
        "the hub has the baked guest"
}
