# shellcheck shell=bash disable=SC2034
# Scenario: a reboot keeps the host ID and the credential. The agent is
# installed under systemd and checks in; the guest reboots (qemu runs with
# -no-reboot, so the reboot ends the process and the harness boots the same
# disk again); after the boot the agent checks in again without registering
# anew, `outpost status` is right and the hub still has one device.
LAB_DESC="reboot keeps host ID and credential; check-ins resume; status is right"
LAB_CI="yes"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    lab_userdata "$s/user-data"

    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "first boot: install and check-ins failed"; }
set -eu
./outpost install --config /mnt/lab/user-data
n=0
until [ "$(journalctl -q -b -u outpost.service -o cat | grep -c 'checked in')" -ge 2 ]; do
    n=$((n + 1)); [ $n -lt 180 ] || { echo "no 2 check-ins"; exit 1; }; sleep 1
done
cat /var/lib/outpost/host-id >before.id
sha256sum </var/lib/outpost/credential >before.cred
cat /proc/sys/kernel/random/boot_id >before.boot
touch stay     # the reboot, not lab-run, ends this boot
# In 3 s, so that lab-run records this script's exit status first.
systemd-run --quiet --on-active=3 systemctl reboot
GUEST
    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "second boot: the agent did not check in again"; }
set -eu
n=0
until [ "$(journalctl -q -b -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
    n=$((n + 1)); [ $n -lt 180 ] || { echo "no check-in after the reboot"; exit 1; }; sleep 1
done
cat /var/lib/outpost/host-id >after.id
sha256sum </var/lib/outpost/credential >after.cred
cat /proc/sys/kernel/random/boot_id >after.boot
set +e
/usr/local/bin/outpost status
echo $? >status.rc
/usr/local/bin/outpost status --json >status.json
systemctl is-active outpost.service >active
journalctl -q -u outpost.service -o short-monotonic --no-pager | tail -n 15
GUEST
    lab_vm_out vm

    [ -s "$s/before.id" ] || lab_fail "no host ID after the install"
    lab_assert_eq "$(cat "$s/after.id")" "$(cat "$s/before.id")" "host ID across the reboot"
    lab_assert_eq "$(cat "$s/after.cred")" "$(cat "$s/before.cred")" "credential (sha256) across the reboot"
    [ "$(cat "$s/after.boot")" != "$(cat "$s/before.boot")" ] || lab_fail "the second script ran in the same boot"
    lab_assert_eq "$(cat "$s/active")" active "outpost.service after the reboot"
    lab_assert_eq "$(cat "$s/status.rc")" 0 "outpost status after the reboot"
    lab_assert_json "$s/status.json" "d['host_id'] == '$(cat "$s/before.id")'" "status.json host_id"
    lab_assert_json "$s/status.json" "d['last_error'] is None and d['consecutive_failures'] == 0" "status.json: no error"

    # The hub: one device, the same ID, exactly one registration in all.
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "[x['host_id'] for x in d['devices']] == ['$(cat "$s/before.id")']" \
        "the hub has exactly the guest"
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['checkins'] >= 3" "check-ins on the hub"
    local regs
    regs=$(grep -c '"path":"/outpost/v1/register","status":200' "$LAB_RUN/hub/requests.jsonl" || true)
    lab_assert_eq "$regs" 1 "successful registrations on the hub"
}
