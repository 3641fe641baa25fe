# shellcheck shell=bash disable=SC2034
# Scenario: self-upgrade under the cron scheduler. Version A is installed
# with `outpost install --scheduler cron` on a guest running cron; the hub
# rolls out B. One cron run (`outpost checkin`) downloads B, swaps it in and
# exits 75; the next run starts with the guard of the previous binary
# (outpost.prev upgrade-guard, first on the cron line), which counts B's
# start, then B checks in and commits. At the end the installed binary is B
# byte for byte, outpost.prev is A, `outpost status` shows the commit and
# the hub's rollout is done. B is a TEST DOUBLE: a shell wrapper running the
# agent (a test-hooks build, given with OUTPOST_LAB_BIN_X86_64) as 0.9.0.
LAB_DESC="self-upgrade under cron: one run swaps B in, the next runs the guard first, then B commits"
LAB_CI="no"
LAB_CI_SKIP="needs two or three cron periods (10-15 min) of guest time; needs a test-hooks agent build"

scenario() {
    LAB_TIMEOUT=2400
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share keys=$LAB_RUN/keys b=$LAB_RUN/rel/outpost-0.9.0-x86_64-linux-musl
    mkdir -p "$keys" "$LAB_RUN/rel"
    "$LAB_ROOT/scripts/sign" keygen "$keys/rel" >/dev/null
    lab_userdata "$s/user-data"
    tail -n 5 "$s/user-data" | grep -q '^outpost:' || lab_fail "user-data no longer ends with an outpost: block"
    printf '  upgrade:\n    publicKeys:\n      - "%s"\n' "$(sed -n 2p "$keys/rel.pub")" >>"$s/user-data"
    printf '#!/bin/sh\nOUTPOST_TEST_VERSION=0.9.0 exec /usr/local/lib/outpost-real "$@"\n' >"$b"
    chmod 755 "$b"
    "$LAB_ROOT/scripts/sign" manifest "$keys/rel.sec" "$b" 0.9.0 x86_64 >/dev/null
    lab_hub release add "$b.manifest" --key "$keys/rel.pub" >/dev/null
    cp "$b" "$s/b-binary"

    lab_vm_start vm "$LAB_DIR/scenarios/upgrade-cron.guest"
    lab_vm_wait_file vm installed 900
    lab_hub rollout start --version 0.9.0 >/dev/null
    lab_vm_finish vm || { lab_vm_out vm; lab_fail "the guest's script failed"; }
    lab_vm_out vm
    lab_hub rollout status | tee "$LAB_RUN/rollout.txt"

    local r=$s/results
    val() { sed -n "s/^$1=//p" "$r" | tail -1; }
    lab_assert_eq "$(val install_rc)" 0 "outpost install --scheduler cron"
    lab_assert_eq "$(val no_unit)" yes "no systemd unit under cron"
    lab_assert_eq "$(val swapped_trial)" yes "a cron run swapped B in: trial.json and outpost.prev appeared"
    lab_assert_eq "$(val committed)" yes "outpost status shows 0.1.0 -> 0.9.0 committed"
    lab_assert_eq "$(val bin_is_b)" yes "the installed binary is B, byte for byte"
    lab_assert_eq "$(val prev_is_a)" yes "outpost.prev is A, byte for byte"
    lab_assert_eq "$(val version)" 0.9.0 "the agent reports B"
    lab_assert_eq "$(val guard_first)" yes "the cron line runs the guard of outpost.prev before the check-in"
    lab_log "from the rollout to the commit: $(val commit_s) s (two cron runs, each with up to 240 s of splay)"
    grep -q "^rollout of 0.9.0: done" "$LAB_RUN/rollout.txt" || lab_fail "the hub's rollout is not done"
    grep -q "committed" "$LAB_RUN/rollout.txt" || lab_fail "the hub does not show the device committed"
}
