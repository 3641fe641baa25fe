# shellcheck shell=bash disable=SC2034
# Scenario: an aarch64 guest (qemu -M virt, TCG) of the fit shape boots
# with systemd, passes `outpost check` and checks in once with the hub.
LAB_DESC="aarch64 guest: boot, check passes (fit shape), one check-in with the hub"
LAB_CI="yes"

scenario() {
    lab_hub_start
    lab_vm_new arm fit aarch64
    local s=$LAB_RUN/arm/share
    lab_userdata "$s/user-data"
    lab_vm_boot arm <<'GUEST' || { lab_vm_out arm; lab_fail "the aarch64 guest's script failed"; }
set +e
uname -m >arch
cat /proc/1/comm >pid1
./outpost check --json >check.json
echo $? >check.rc
./outpost check
./outpost checkin --config /mnt/lab/user-data
echo $? >checkin.rc
./outpost status --config /mnt/lab/user-data --json >status.json
GUEST
    lab_vm_out arm
    lab_assert_eq "$(cat "$s/arch")" aarch64 "uname -m in the guest"
    lab_assert_eq "$(cat "$s/pid1")" systemd "PID 1 in the guest"
    lab_assert_eq "$(cat "$s/check.rc")" 0 "check's exit status on the aarch64 fit guest"
    lab_assert_json "$s/check.json" 'd["host"]["arch"] == "aarch64" and d["summary"]["fail"] == 0'
    lab_assert_json "$s/check.json" 'd["host"]["cpus"] == 4 and d["host"]["memory_bytes"] >= 3.5 * 2**30'
    lab_assert_eq "$(cat "$s/checkin.rc")" 0 "outpost checkin's exit status"
    lab_assert_json "$s/status.json" 'd["last_success"] is not None'
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" 'len(d["devices"]) == 1 and d["devices"][0]["arch"] == "aarch64"' \
        "the hub has the aarch64 guest"
}
