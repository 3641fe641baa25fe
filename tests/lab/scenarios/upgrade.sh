# shellcheck shell=bash disable=SC2034
# Scenario: self-upgrade under real systemd. Version A is installed from
# the airgap bundle (install.sh --offline, as an operator would); the hub rolls out B: the service downloads it, swaps,
# exits 75, systemd restarts it at once (ExecStartPre= runs the previous
# binary's guard), B checks in and commits after its grace period. Then a
# release C that fails at every start is rolled out: after 3 failed starts
# the guard of B (outpost.prev) puts B back, the service runs B again and
# the hub's rollout pauses with the reason. The releases are TEST DOUBLES:
# shell wrappers that run the agent (a test-hooks build, given with
# OUTPOST_LAB_BIN_X86_64) under another version (OUTPOST_TEST_VERSION).
LAB_DESC="self-upgrade under systemd: rollout A->B, exit 75, commit; broken C rolled back by the guard"
LAB_CI="no"
LAB_CI_SKIP="about 10 minutes of guest time under TCG; needs a test-hooks agent build"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local share=$LAB_RUN/vm/share keys=$LAB_RUN/keys
    mkdir -p "$keys" "$LAB_RUN/rel"
    "$LAB_ROOT/scripts/sign" keygen "$keys/rel" >/dev/null
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$LAB_ROOT/Cargo.toml" | head -1)
    "$LAB_ROOT/scripts/make-bundle" "$LAB_RUN/bundle" "$version" x86_64 "$share/outpost" >/dev/null
    cp "$LAB_RUN/bundle/outpost-$version-x86_64-airgap.tar.gz" "$share/bundle.tar.gz"
    lab_userdata "$share/user-data"
    # lab_userdata ends with the outpost: block; the key goes under it.
    tail -n 5 "$share/user-data" | grep -q '^outpost:' || lab_fail "user-data no longer ends with an outpost: block"
    printf '  upgrade:\n    publicKeys:\n      - "%s"\n' "$(sed -n 2p "$keys/rel.pub")" >>"$share/user-data"
    # B: the agent under version 0.9.0 (the real binary is copied by the
    # guest to /usr/local/lib/outpost-real first).
    local b=$LAB_RUN/rel/outpost-0.9.0-x86_64-linux-musl c=$LAB_RUN/rel/outpost-0.9.1-x86_64-linux-musl
    printf '#!/bin/sh\nOUTPOST_TEST_VERSION=0.9.0 exec /usr/local/lib/outpost-real "$@"\n' >"$b"
    # C: answers the smoke run, then fails every start.
    printf '#!/bin/sh\nif [ "$1" = --version ]; then echo '"'"'{"schema":"outpost.version/v1","version":"0.9.1","git_rev":"x","target":"x86_64-unknown-linux-musl","build_date":"x"}'"'"'; exit 0; fi\necho "0.9.1: broken at start" >&2\nexit 1\n' >"$c"
    chmod 755 "$b" "$c"
    "$LAB_ROOT/scripts/sign" manifest "$keys/rel.sec" "$b" 0.9.0 x86_64 >/dev/null
    "$LAB_ROOT/scripts/sign" manifest "$keys/rel.sec" "$c" 0.9.1 x86_64 >/dev/null
    lab_hub release add "$b.manifest" --key "$keys/rel.pub" >/dev/null
    lab_hub release add "$c.manifest" --key "$keys/rel.pub" >/dev/null

    lab_vm_start vm "$LAB_DIR/scenarios/upgrade.guest"
    lab_vm_wait_file vm installed 900
    lab_hub rollout start --version 0.9.0 >/dev/null
    lab_vm_wait_file vm committed 900
    # The hub learns of the commit at B's next check-in (every 10 s); until
    # then it shows the device on trial.
    local i
    for i in $(seq 24); do
        lab_hub rollout status >"$LAB_RUN/rollout-b.txt" 2>&1 || true
        grep -q "^rollout of 0.9.0: done" "$LAB_RUN/rollout-b.txt" && break
        sleep 5
    done
    cat "$LAB_RUN/rollout-b.txt"
    lab_hub rollout abort >/dev/null
    lab_hub rollout start --version 0.9.1 --canary 1 >/dev/null
    touch "$share/go-c"
    lab_vm_finish vm || { lab_vm_out vm; lab_fail "the guest's script failed"; }
    lab_vm_out vm
    lab_hub rollout status | tee "$LAB_RUN/rollout-c.txt"

    local r=$share/results
    val() { sed -n "s/^$1=//p" "$r" | tail -1; }
    lab_assert_eq "$(val install_rc)" 0 "install.sh --offline from the airgap bundle"
    lab_assert_eq "$(val b_version)" 0.9.0 "the service runs B after the upgrade"
    lab_assert_eq "$(val b_exit75)" yes "the old service ended with 75 (restart into B)"
    lab_assert_eq "$(val b_result)" success "Result after exit 75 (SuccessExitStatus)"
    lab_assert_eq "$(val b_active)" active "the service is active as B"
    lab_assert_eq "$(val b_committed)" yes "B committed (outpost status)"
    lab_assert_eq "$(val c_rolled_back)" yes "C rolled back by the guard (outpost status)"
    lab_assert_eq "$(val c_bin_is_b)" yes "the installed binary is B again, byte for byte"
    lab_assert_eq "$(val c_active)" active "the service runs again after the rollback"
    grep -q "committed" "$LAB_RUN/rollout-b.txt" || lab_fail "the hub does not show B committed"
    grep -q "paused (edge" "$LAB_RUN/rollout-c.txt" || grep -q "rolled back" "$LAB_RUN/rollout-c.txt" ||
        lab_fail "the hub does not show the rollback of C"
}
