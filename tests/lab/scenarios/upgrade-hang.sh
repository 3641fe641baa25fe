# shellcheck shell=bash disable=SC2034
# Scenario: a release that hangs, under real systemd. Version A is installed
# with `outpost install`; the hub rolls out H, a release whose `outpost run`
# checks in, tells systemd it is ready and then hangs without another
# watchdog ping. systemd's watchdog (WatchdogSec=120) kills it, restarts it
# (Restart=on-failure), and before the 4th start the guard of the previous
# binary (ExecStartPre=, outpost.prev upgrade-guard) puts A back: the
# installed binary is A again byte for byte, the service runs, `outpost
# status` and the hub's rollout show the rollback with its reason. H is a
# TEST DOUBLE: a shell wrapper running the agent (a test-hooks build, given
# with OUTPOST_LAB_BIN_X86_64) as 0.9.0 with OUTPOST_TEST_HANG_AFTER_READY.
LAB_DESC="a release that hangs: killed by systemd's watchdog 3 times, rolled back by the previous binary's guard"
LAB_CI="no"
LAB_CI_SKIP="about 10 minutes of guest time (3 watchdog periods); needs a test-hooks agent build"

scenario() {
    LAB_TIMEOUT=1800
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share keys=$LAB_RUN/keys h=$LAB_RUN/rel/outpost-0.9.0-x86_64-linux-musl
    mkdir -p "$keys" "$LAB_RUN/rel"
    "$LAB_ROOT/scripts/sign" keygen "$keys/rel" >/dev/null
    lab_userdata "$s/user-data"
    tail -n 5 "$s/user-data" | grep -q '^outpost:' || lab_fail "user-data no longer ends with an outpost: block"
    printf '  upgrade:\n    publicKeys:\n      - "%s"\n' "$(sed -n 2p "$keys/rel.pub")" >>"$s/user-data"
    printf '#!/bin/sh\nOUTPOST_TEST_VERSION=0.9.0 OUTPOST_TEST_HANG_AFTER_READY=1 exec /usr/local/lib/outpost-real "$@"\n' >"$h"
    chmod 755 "$h"
    "$LAB_ROOT/scripts/sign" manifest "$keys/rel.sec" "$h" 0.9.0 x86_64 >/dev/null
    lab_hub release add "$h.manifest" --key "$keys/rel.pub" >/dev/null

    lab_vm_start vm "$LAB_DIR/scenarios/upgrade-hang.guest"
    lab_vm_wait_file vm installed 900
    lab_hub rollout start --version 0.9.0 >/dev/null
    lab_vm_finish vm || { lab_vm_out vm; lab_fail "the guest's script failed"; }
    lab_vm_out vm
    lab_hub rollout status | tee "$LAB_RUN/rollout.txt"

    local r=$s/results
    val() { sed -n "s/^$1=//p" "$r" | tail -1; }
    lab_assert_eq "$(val install_rc)" 0 "outpost install"
    lab_assert_eq "$(val swapped)" yes "A swapped H in and exited 75"
    lab_assert_eq "$(val hung)" 3 "starts of H that hung (the test hook's line in the journal)"
    lab_assert_eq "$(val watchdog_kills)" 3 "watchdog timeouts of outpost.service"
    lab_assert_eq "$(val rolled_back)" yes "outpost status shows H rolled back"
    lab_assert_eq "$(val bin_is_a)" yes "the installed binary is A again, byte for byte"
    lab_assert_eq "$(val version)" 0.1.0 "the service runs A again"
    lab_assert_eq "$(val active)" active "the service is active after the rollback"
    local bound
    bound=$(val rollback_s)
    lab_log "from the swap to the rollback: ${bound} s (3 x (WatchdogSec 120 + RestartSec 30) plus starts; the guard's window is 900 s)"
    [ "$bound" -le 900 ] || lab_fail "the rollback took ${bound} s, more than the trial window of 900 s"
    grep -q "rolled back" "$LAB_RUN/rollout.txt" || lab_fail "the hub does not show the rollback"
    grep -q "^rollout of 0.9.0: paused (edge-.* rolled back: 0.9.0 started 3 times without committing)" "$LAB_RUN/rollout.txt" ||
        lab_fail "the hub's rollout is not paused with the reason (a device on trial must not count as committed)"
}
