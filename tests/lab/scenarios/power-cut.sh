# shellcheck shell=bash disable=SC2034
# Scenario: power cuts. The agent runs under systemd, checking in every
# 10 s; the harness kills qemu (SIGKILL: the guest loses whatever it had not
# flushed) at a random instant, LAB_POWER_CUTS times (default 10). After
# every boot the agent runs and checks in again, its state files are valid
# JSON, the host ID and credential are unchanged, and at the end the hub
# has one device that registered once.
LAB_DESC="power cuts at random instants during check-ins (10x): agent runs, state valid, no duplicate host"
LAB_CI="no"
LAB_CI_SKIP="11 boots: 34 min measured on a loaded 2-core machine"

scenario() {
    local cuts=${LAB_POWER_CUTS:-10} i s=$LAB_RUN/vm/share delay
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    lab_userdata "$s/user-data"
    echo 0 >"$s/cycle"
    lab_vm_start vm <<'GUEST'
set -eu
./outpost install --config /mnt/lab/user-data
cat /var/lib/outpost/host-id >id.0
sha256sum </var/lib/outpost/credential >cred.0
touch stay
GUEST
    for i in $(seq 1 "$cuts"); do
        lab_vm_wait_file vm rc || lab_fail "boot $((i - 1)) did not finish its checks"
        [ "$(cat "$s/rc" 2>/dev/null)" = 0 ] || { lab_vm_out vm; lab_fail "boot $((i - 1)): the guest's checks failed"; }
        # Let it check in once or twice more, then cut at a random instant.
        delay=$((RANDOM % 20)).$((RANDOM % 10))
        sleep "$delay"
        lab_vm_kill vm
        lab_log "power cut $i of $cuts, ${delay}s after the guest's checks"
        echo "$i" >"$s/cycle"
        lab_vm_start vm "$LAB_DIR/scenarios/power-cut.guest"
    done
    lab_vm_wait_file vm rc || lab_fail "boot $cuts did not finish its checks"
    [ "$(cat "$s/rc" 2>/dev/null)" = 0 ] || { lab_vm_out vm; lab_fail "boot $cuts: the guest's checks failed"; }
    lab_vm_kill vm
    lab_vm_out vm

    for i in $(seq 1 "$cuts"); do
        lab_assert_eq "$(cat "$s/id.$i")" "$(cat "$s/id.0")" "host ID after power cut $i"
        lab_assert_eq "$(cat "$s/cred.$i")" "$(cat "$s/cred.0")" "credential (sha256) after power cut $i"
    done
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "[x['host_id'] for x in d['devices']] == ['$(cat "$s/id.0")']" \
        "the hub has exactly one device, the guest"
    local regs
    regs=$(grep -c '"path":"/outpost/v1/register","status":200' "$LAB_RUN/hub/requests.jsonl" || true)
    lab_assert_eq "$regs" 1 "successful registrations on the hub"
}
