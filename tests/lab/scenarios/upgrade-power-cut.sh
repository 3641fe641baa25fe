# shellcheck shell=bash disable=SC2034
# Scenario: power cuts during hub-driven self-upgrades under real systemd.
# The agent (`outpost run`, the installed service) is upgraded by rollouts
# of one release after another; the guest reaches the hub through a relay on
# the host (tests/lab/relay.py) that paces artifact downloads, so the host
# can cut the power (SIGKILL to qemu) at a random byte of a download, or at a
# random instant in the 3 s after its last byte: verify, smoke run, the swap
# (a test-hooks build pausing 400 ms between its steps), exit 75 and the
# restart. Per round: 3 cuts in the download, then cuts after it until one
# leaves the new binary in place; then the release must commit (the hub's
# rollout is done) before the next round. After every boot: the agent runs
# and checked in, the installed binary is byte for byte the round's old or
# new release (also as the cut left it, before the guard ran), the state
# files are valid, nothing but outpost, outpost.prev and a staging
# .outpost.new is in its folder. At the end: the last release committed, no
# staging file left, one device and one registration on the hub.
# Releases are TEST DOUBLES: shell wrappers (padded to LAB_UPGRADE_SIZE
# bytes) that run the agent under another version (OUTPOST_TEST_VERSION),
# as in the upgrade scenario; the agent must be a test-hooks build
# (OUTPOST_LAB_BIN_X86_64). LAB_SEED=N repeats the same choices of cut
# instants (the guest's own timing still varies).
LAB_DESC="power cuts (20x) during the download and the swap of hub-driven self-upgrades: old or new binary, never broken; commits"
LAB_CI="no"
LAB_CI_SKIP="about 25 boots; needs a test-hooks agent build"

scenario() {
    local cuts=${LAB_UPGRADE_CUTS:-20} size=${LAB_UPGRADE_SIZE:-2097152} rate=${LAB_UPGRADE_RATE:-262144}
    local seed=${LAB_SEED:-$(($(date +%s) % 32768))}
    RANDOM=$seed
    lab_log "seed $seed (LAB_SEED=$seed repeats these cut instants), $cuts cuts, artifacts of $size bytes at $rate B/s"
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    local r=$LAB_RUN/relay keys=$LAB_RUN/keys rel=$LAB_RUN/rel i
    mkdir -p "$r" "$keys" "$rel"
    touch "$r/hold"
    python3 "$LAB_DIR/relay.py" "$LAB_HUB_PORT" "$rate" "$r" 2>"$r/err" &
    echo $! >>"$LAB_RUN/pids"
    for i in $(seq 100); do [ -s "$r/port" ] && break; sleep 0.1; done
    [ -s "$r/port" ] || lab_fail "the relay did not start: $(cat "$r/err")"
    LAB_HUB_URL=https://10.0.2.2:$(cat "$r/port") # guests go through the relay
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    "$LAB_ROOT/scripts/sign" keygen "$keys/rel" >/dev/null
    lab_userdata "$s/user-data"
    tail -n 5 "$s/user-data" | grep -q '^outpost:' || lab_fail "user-data no longer ends with an outpost: block"
    printf '  upgrade:\n    publicKeys:\n      - "%s"\n' "$(sed -n 2p "$keys/rel.pub")" >>"$s/user-data"

    local -A sha
    local from to n=0 cut=0 round=0 seen=0 kind dl
    from=$("$s/outpost" --version --json | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
    sha[$from]=$(sha256sum <"$s/outpost" | cut -d' ' -f1)
    printf '%-4s %-6s %-8s %-26s %-44s %s\n' CUT ROUND KIND "AT" "LAST LOG LINE BEFORE THE CUT" "NEXT BOOT FOUND" >"$LAB_RUN/cuts.txt"

    echo 0 >"$s/cycle"
    lab_vm_start vm "$LAB_DIR/scenarios/upgrade-power-cut.guest"
    upc_checked 0 "$from" "$from"
    local t0
    t0=$(date +%s)
    while [ "$cut" -lt "$cuts" ]; do
        round=$((round + 1))
        to=0.9.$round
        upc_release "$to"
        sha[$to]=$(sha256sum <"$rel/outpost-$to-x86_64-linux-musl" | cut -d' ' -f1)
        lab_hub rollout start --version "$to" >/dev/null
        dl=0
        while [ "$cut" -lt "$cuts" ]; do
            local at target ms conn
            rm -f "$r/hold"
            if [ "$dl" -lt 3 ]; then
                kind=download
                dl=$((dl + 1))
                target=$((65536 + (RANDOM * 32768 + RANDOM) % (size * 95 / 100 - 65536)))
                conn=$(upc_wait_bytes "$seen" "$target") || lab_fail "cut $((cut + 1)): the download did not reach byte $target"
                at="byte $target of $size"
            else
                kind=swap
                conn=$(upc_wait_bytes "$seen" "$size") || lab_fail "cut $((cut + 1)): the download did not finish"
                ms=$((RANDOM % 3000))
                sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
                at="${ms} ms after the last byte"
            fi
            lab_vm_kill vm
            seen=$conn
            cut=$((cut + 1))
            local last
            last=$(grep -E 'downloading|SHA-256 match|smoke run|swap: |installed|exiting with 75|upgrade-guard|checked in' \
                "$s/boot.$n/journal.txt" 2>/dev/null | tail -n 1 | sed -E 's/^\[[ 0-9.]+\] [^ ]+ [^ ]+: //; s/^[A-Z]+ +\[[^]]*\] //' | cut -c1-44 || true)
            lab_log "power cut $cut of $cuts (round $round, $from -> $to, $kind): at $at"
            n=$((n + 1))
            touch "$r/hold"
            echo "$n" >"$s/cycle"
            lab_vm_start vm "$LAB_DIR/scenarios/upgrade-power-cut.guest"
            upc_checked "$n" "$from" "$to"
            local found
            found=$(upc_found "$s/boot.$n")
            printf '%-4s %-6s %-8s %-26s %-44s %s\n' "$cut" "$round" "$kind" "$at" "${last:-?}" "$found" >>"$LAB_RUN/cuts.txt"
            # A cut after the download that left the new binary in place
            # ends the round: that release must now commit.
            [ "$kind" = swap ] && [ "$(cat "$s/boot.$n/version")" = "$to" ] && break
        done
        rm -f "$r/hold"
        upc_wait_done "$to"
        lab_log "round $round: $to committed"
        from=$to
    done
    local t1
    t1=$(date +%s)
    # One more cut after the last commit, then a boot that checks the end state.
    lab_vm_kill vm
    n=$((n + 1))
    echo "$n" >"$s/cycle"
    touch "$s/final"
    rm -f "$r/hold"
    lab_vm_boot vm "$LAB_DIR/scenarios/upgrade-power-cut.guest" || { lab_vm_out vm; lab_fail "the final boot's checks failed"; }
    lab_vm_out vm
    cat "$LAB_RUN/cuts.txt"
    lab_log "$cut cuts in $round rounds, $n boots; $((t1 - t0)) s from the first rollout to the last commit"
    lab_assert_eq "$(cat "$s/boot.$n/version")" "$to" "the version after the last round"
    lab_assert_eq "$(cat "$s/boot.$n/sha")" "${sha[$to]}" "the installed binary is the last release, byte for byte"
    grep -q "upgrade: .* -> $to committed" "$s/boot.$n/status.txt" || lab_fail "outpost status does not show $to committed"
    lab_assert_eq "$(tr '\n' ' ' <"$s/boot.$n/bin-dir")" "outpost outpost.prev " "the binary's folder at the end"
    if grep -q '\.tmp\.' "$s/boot.$n/state-dir"; then lab_fail "temp files left in the state dir: $(tr '\n' ' ' <"$s/boot.$n/state-dir")"; fi
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "len(d['devices']) == 1" "the hub has exactly one device"
    local regs
    regs=$(grep -c '"path":"/outpost/v1/register","status":200' "$LAB_RUN/hub/requests.jsonl" || true)
    lab_assert_eq "$regs" 1 "successful registrations on the hub"
}

# upc_release VERSION: a signed wrapper release, padded to $size bytes, on the hub.
upc_release() {
    local v=$1 f=$rel/outpost-$1-x86_64-linux-musl
    # Padding: comment lines of random base64 (more than enough), cut to size.
    printf '#!/bin/sh\nOUTPOST_TEST_VERSION=%s exec /usr/local/lib/outpost-real "$@"\n' "$v" >"$f"
    head -c "$size" /dev/urandom | base64 -w 76 | sed 's/^/# /' >>"$f"
    truncate -s "$size" "$f"
    printf '\n' | dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc status=none
    chmod 755 "$f"
    "$LAB_ROOT/scripts/sign" manifest "$keys/rel.sec" "$f" "$v" x86_64 >/dev/null
    lab_hub release add "$f.manifest" --key "$keys/rel.pub" >/dev/null
}

# upc_wait_bytes SEEN BYTES: waits until a download on a connection after
# SEEN has carried BYTES (the relay's count); prints that connection.
upc_wait_bytes() {
    local seen=$1 want=$2 c=0 b=0 i=0
    while [ "$i" -lt 30000 ]; do # 600 s
        [ ! -f "$r/progress" ] || read -r c b <"$r/progress" || true
        if [ "${c:-0}" -gt "$seen" ] && [ "${b:-0}" -ge "$want" ]; then
            echo "$c"
            return 0
        fi
        kill -0 "$(cat "$LAB_RUN/vm/wrapper.pid")" 2>/dev/null || return 1
        sleep 0.02
        i=$((i + 1))
    done
    return 1
}

# upc_checked N FROM TO: waits for boot N's checks; they must pass, and the
# binary (as the cut left it, and running now) must be FROM's or TO's.
upc_checked() {
    local b=$s/boot.$1 got v
    lab_vm_wait_file vm rc 900 || lab_fail "boot $1 did not finish its checks"
    [ "$(cat "$s/rc")" = 0 ] || { lab_vm_out vm; lab_fail "boot $1: the guest's checks failed"; }
    rm -f "$s/rc"
    got=$(cat "$b/sha")
    [ "$got" = "${sha[$2]}" ] || [ "$got" = "${sha[$3]}" ] ||
        lab_fail "boot $1: the installed binary ($got) is neither $2 nor $3"
    v=$(cat "$b/version")
    [ "$v" = "$2" ] || [ "$v" = "$3" ] || lab_fail "boot $1: the agent reports $v, neither $2 nor $3"
    if [ -f "$b/snap.txt" ]; then
        got=$(sed -n 's/^\([0-9a-f]\{64\}\)  outpost$/\1/p' "$b/snap.txt")
        [ "$got" = "${sha[$2]}" ] || [ "$got" = "${sha[$3]}" ] ||
            lab_fail "boot $1: after the cut, before the guard, the binary ($got) is neither $2 nor $3: $(cat "$b/snap.txt")"
    fi
    local f
    while read -r f; do
        case $f in outpost | outpost.prev | .outpost.new | .outpost.prev.tmp) ;;
        *) lab_fail "boot $1: unexpected file $f beside the binary" ;;
        esac
    done <"$b/bin-dir"
}

# upc_found DIR: what boot DIR found after the cut: the binary as the cut
# left it (before the guard ran), a trial file, a staging file and its
# size, and the version running once the guard and the agent started.
upc_found() {
    local snap=$1/snap.txt out
    out="binary $(upc_name "$(sed -n 's/^\([0-9a-f]\{64\}\)  outpost$/\1/p' "$snap")")"
    if ! grep -A1 '^== trial.json' "$snap" | grep -q 'No such file'; then out="$out, trial.json"; fi
    if grep -q ' \.outpost\.new$' "$snap"; then
        out="$out, .outpost.new $(awk '$NF == ".outpost.new" {print $5}' "$snap") B"
    fi
    echo "$out; runs $(cat "$1/version")"
}

upc_name() { # SHA: which release it is
    local v
    for v in "${!sha[@]}"; do
        if [ "${sha[$v]}" = "$1" ]; then
            echo "$v"
            return 0
        fi
    done
    echo "unknown (${1:-none})"
}

# upc_wait_done VERSION: the hub's rollout of VERSION is done (the agent
# committed and reported it).
upc_wait_done() {
    local i
    for i in $(seq 180); do
        lab_hub rollout status >"$LAB_RUN/rollout.txt" 2>&1 || true
        grep -q "^rollout of $1: done" "$LAB_RUN/rollout.txt" && return 0
        kill -0 "$(cat "$LAB_RUN/vm/wrapper.pid")" 2>/dev/null || lab_fail "the guest stopped while $1 was to commit"
        sleep 5
    done
    cat "$LAB_RUN/rollout.txt" >&2
    lab_fail "the rollout of $1 was not done within 900 s"
}
