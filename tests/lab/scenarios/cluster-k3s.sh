# shellcheck shell=bash disable=SC2034
# Scenario: a single-node K3s cluster behind a VIP, driven by the real hub,
# applied by the agent under real systemd on the fit guest. K3s itself is
# the TEST DOUBLE tests/support/fake-k3s, delivered as "the K3s binary" of a
# signed K3s bundle from the hub (scripts/make-k3s-bundle; no real K3s
# runs): what is real here is systemd (outpost.service, the
# transient role unit, k3s.service with Type=notify), the kernel and the
# guest's NIC answering and sending ARP, and the hub.
#
# Checked: the VIP preflight on the guest's real interface (`outpost check`:
# the slirp gateway 10.0.2.2 answers ARP and is refused with its MAC, the
# guest's own 10.0.2.15 is refused as local, 10.0.2.100 is free); a hub
# cluster on 10.0.2.2 makes the role fail at the preflight with that reason
# and nothing written; after `cluster remove` the host leaves; a cluster on
# 10.0.2.100 goes installing -> running -> ready through the check-in, the
# K3s drop-in (0600) and kube-vip manifest in place, k3s.service active and
# enabled, check-ins and watchdog pings going on while K3s starts (the
# double takes 30 s), the hub showing the member ready with the join token
# in, and neither token in the guest's journal or the hub's logs.
LAB_DESC="K3s role (TEST DOUBLE fake-k3s) from the hub under systemd: VIP preflight on the real NIC, apply, ready"
LAB_CI="no"
# One boot does it all; on a loaded machine it takes far over the default.
LAB_TIMEOUT=${OUTPOST_LAB_TIMEOUT:-2700}
LAB_CI_SKIP="several minutes of guest time under TCG; python3 for the K3s test double is copied into the guest"

# The Debian packages the double needs in the guest (python3 and PyYAML;
# the lab image carries neither), fetched by name with apt-get download,
# unpacked on the host with dpkg-deb -x (no maintainer scripts: byte-
# compiling the standard library under TCG takes minutes) and cached; what
# they depend on besides is in the image already.
CLUSTER_GUEST_DEBS=(python3 python3-minimal python3.11 python3.11-minimal libpython3-stdlib
    libpython3.11-minimal libpython3.11-stdlib media-types libnsl2 libreadline8 readline-common
    libsqlite3-0 python3-yaml libyaml-0-2)

cluster_pyroot() {
    local d=$LAB_CACHE/debs/cluster-k3s p f
    mkdir -p "$d"
    for p in "${CLUSTER_GUEST_DEBS[@]}"; do
        compgen -G "$d/${p}_*.deb" >/dev/null && continue
        (cd "$d" && apt-get -o APT::Sandbox::User=root download "$p") >&2 || lab_die "apt-get download $p failed"
    done
    if [ ! -x "$d/root/usr/bin/python3" ]; then
        rm -rf "$d/root.tmp"
        mkdir -p "$d/root.tmp"
        for f in "$d"/*.deb; do dpkg-deb -x "$f" "$d/root.tmp"; done
        # The image has merged /usr (/lib -> usr/lib): merge the same way.
        for f in bin sbin lib lib64; do
            [ -d "$d/root.tmp/$f" ] || continue
            mkdir -p "$d/root.tmp/usr/$f"
            cp -a "$d/root.tmp/$f/." "$d/root.tmp/usr/$f/"
            rm -rf "${d:?}/root.tmp/$f"
        done
        rm -rf "$d/root"
        mv "$d/root.tmp" "$d/root"
    fi
    echo "$d/root"
}

# member_state CLUSTER: the state of the only member on the hub.
member_state() {
    lab_hub cluster show "$1" --json >"$LAB_RUN/show.json" 2>/dev/null || { echo none; return; }
    lab_json "$LAB_RUN/show.json" 'd["members"][0]["state"] or "-"'
}

wait_member() { # CLUSTER STATE SECONDS
    local i=0
    while [ "$(member_state "$1")" != "$2" ]; do
        [ "$i" -lt "$3" ] || lab_fail "cluster $1: the member is '$(member_state "$1")', not $2 after $3 s"
        kill -0 "$(cat "$LAB_RUN/vm/wrapper.pid")" 2>/dev/null || lab_fail "the guest stopped (cluster $1)"
        sleep 2
        i=$((i + 2))
    done
}

scenario() {
    export RUST_LOG=info # the hub's cluster events
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local share=$LAB_RUN/vm/share pyroot id
    pyroot=$(cluster_pyroot)
    # One file over 9p, not thousands.
    tar -C "$pyroot" -cf "$share/pyroot.tar" .
    cp "$LAB_ROOT/tests/support/fake-k3s" "$share/fake-k3s"
    # The K3s bundle: the double as its binary and a stand-in images
    # archive, signed with a release key the guest trusts, served by the hub.
    local keys=$LAB_RUN/keys bundle
    mkdir -p "$keys"
    "$LAB_ROOT/scripts/sign" keygen "$keys/rel" >/dev/null
    echo "stand-in airgap images, not a real archive" >"$keys/k3s-airgap-images-amd64.tar.zst"
    bundle=$("$LAB_ROOT/scripts/make-k3s-bundle" "$keys/rel.sec" "$keys/out" v1.31.4+k3s1 x86_64 \
        "$LAB_ROOT/tests/support/fake-k3s" "$keys/k3s-airgap-images-amd64.tar.zst")
    lab_hub cluster bundle add "$bundle/k3s-bundle.json" --key "$keys/rel.pub"
    lab_userdata "$share/user-data"
    printf '  upgrade:\n    publicKeys:\n      - "%s"\n' "$(sed -n 2p "$keys/rel.pub")" >>"$share/user-data"

    lab_vm_start vm "$LAB_DIR/scenarios/cluster-k3s.guest"
    lab_vm_wait_file vm registered 2000
    id=$(cat "$share/registered")
    local k3s=(--distro k3s --version v1.31.4+k3s1)

    # A VIP that answers ARP (the slirp gateway): refused by the preflight.
    lab_hub cluster create edge-bad "${k3s[@]}" --endpoint vip:10.0.2.2
    lab_hub cluster add edge-bad "$id" --role control-plane
    wait_member edge-bad failed 900
    lab_vm_wait_file vm bad-failed 300
    lab_hub cluster remove edge-bad
    lab_vm_wait_file vm bin-restored 1200 # leaving removed the binary

    # A free VIP: the role comes up.
    lab_hub cluster create edge-1 "${k3s[@]}" --endpoint vip:10.0.2.100
    lab_hub cluster add edge-1 "$id" --role control-plane
    wait_member edge-1 ready 1200
    lab_hub cluster show edge-1 | tee "$LAB_RUN/show.txt"
    touch "$share/go-check"
    lab_vm_finish vm || { lab_vm_out vm; lab_fail "the guest's script failed"; }
    lab_vm_out vm

    local r=$share/results
    val() { sed -n "s/^$1=//p" "$r" | tail -1; }
    lab_assert_eq "$(val python_rc)" 0 "python3 and PyYAML for the K3s test double"
    lab_assert_eq "$(val install_rc)" 0 "outpost install"

    # outpost check on the real interface.
    lab_assert_eq "$(val check_rc_10.0.2.100)" 0 "check --vip 10.0.2.100 (free)"
    lab_assert_json "$share/check-10.0.2.100.json" \
        '[c["status"] for c in d["checks"] if c["id"] == "vip-arp"] == ["pass"]' "vip-arp passes for a free address"
    lab_assert_eq "$(val check_rc_10.0.2.2)" 1 "check --vip 10.0.2.2 (the gateway)"
    lab_assert_json "$share/check-10.0.2.2.json" \
        '[c["observed"] for c in d["checks"] if c["id"] == "vip-arp"] == ["in use by 52:55:0a:00:02:02"]' \
        "vip-arp names the gateway's MAC"
    lab_assert_eq "$(val check_rc_10.0.2.15)" 1 "check --vip 10.0.2.15 (the guest's own)"
    lab_assert_json "$share/check-10.0.2.15.json" \
        '[c["status"] for c in d["checks"] if c["id"] == "vip-local"] == ["fail"]' "vip-local fails for a local address"

    # The role on the gateway's address: failed at the preflight, nothing written.
    lab_assert_eq "$(val bad_state)" failed "the role on VIP 10.0.2.2"
    lab_assert_eq "$(val bad_reason)" "preflight vip-arp: in use by 52:55:0a:00:02:02" "its reason"
    lab_assert_eq "$(val bad_wrote)" no "no K3s drop-in after a failed preflight"
    grep -q "edge-bad: $id (init-server) failed: preflight vip-arp: in use by 52:55:0a:00:02:02" "$LAB_RUN/hub/hub.err" ||
        lab_fail "the hub did not log the member's failure with its reason"
    lab_assert_eq "$(val bad_left)" left "the host left edge-bad after cluster remove"

    # The role on the free VIP.
    lab_assert_eq "$(val ready_state)" ready "the role on VIP 10.0.2.100 (reason: $(val ready_reason))"
    lab_assert_eq "$(val status_rc)" 0 "outpost cluster status"
    lab_assert_eq "$(val k3s_ActiveState)" active "k3s.service (the TEST DOUBLE) ActiveState"
    lab_assert_eq "$(val k3s_Type)" notify "k3s.service Type"
    lab_assert_eq "$(val k3s_NRestarts)" 0 "k3s.service restarts"
    lab_assert_eq "$(val k3s_enabled)" enabled "k3s.service enabled"
    lab_assert_eq "$(val outpost_active)" active "outpost.service"
    lab_assert_eq "$(val dropin_mode)" 600 "mode of 10-outpost.yaml"
    grep -qx '  - "10.0.2.100"' "$share/dropin.yaml" || lab_fail "tls-san 10.0.2.100 not in the drop-in"
    grep -qx 'cluster-init: true' "$share/dropin.yaml" || lab_fail "cluster-init not in the drop-in"
    # node-ip: the hub sends the address the guest's inventory has.
    grep -qx 'node-ip: "10.0.2.15"' "$share/dropin.yaml" || lab_fail "node-ip 10.0.2.15 not in the drop-in"
    grep -q 'value: "10.0.2.100"' "$share/kube-vip.yaml" || lab_fail "the kube-vip manifest does not carry the VIP"
    # K3s came from the hub's signed bundle, byte for byte.
    lab_assert_eq "$(val k3s_sha)" "$(sha256sum "$LAB_ROOT/tests/support/fake-k3s" | cut -d' ' -f1)" \
        "/usr/local/bin/k3s is the bundle's binary (the TEST DOUBLE)"
    lab_assert_eq "$(val images_sha)" "$(sha256sum "$keys/k3s-airgap-images-amd64.tar.zst" | cut -d' ' -f1)" \
        "the bundle's images archive in /var/lib/rancher/k3s/agent/images"
    lab_assert_eq "$(val bin_before_bundle)" no "no K3s binary before the hub's bundle"
    cat "$share/bundle-journal.txt"
    lab_assert_eq "$(val bundle_installed)" 1 "the role step's journal shows the bundle's binary installed"
    # Under systemd the unit runs `k3s server` with K3s's default paths.
    grep -qx 'server' "$share/k3s-calls.log" || lab_fail "k3s.service did not run 'k3s server' (calls: $(cat "$share/k3s-calls.log"))"
    # The slow start came from the unit's environment file.
    grep -q 'coming up in 30 s (FAKE_K3S_READY_DELAY' "$share/out.txt" || lab_fail "the double did not take its 30 s (k3s.env)"
    # The loop did not wait for K3s: check-ins and watchdog pings while it started.
    echo "check-ins while K3s started: $(val c_installing) -> $(val c_running)"
    [ "$(val c_running)" -ge $(($(val c_installing) + 2)) ] ||
        lab_fail "fewer than 2 check-ins while K3s started ($(val c_installing) -> $(val c_running))"
    [ "$(val wd_running)" -gt "$(val wd_installing)" ] || lab_fail "no watchdog ping while K3s started"

    # The hub: ready, the join token in (sealed), no token in its logs.
    grep -q "edge-1: join token from the init server $id stored (sealed)" "$LAB_RUN/hub/hub.err" ||
        lab_fail "the hub did not take the join token"
    local t
    for t in bootstrap join; do
        [ -s "$share/token-$t" ] || lab_fail "no $t token read in the guest"
        lab_assert_eq "$(val "journal_has_$t")" no "the $t token in the guest's journal"
        ! grep -qF "$(cat "$share/token-$t")" "$LAB_RUN/hub/hub.err" "$LAB_RUN/hub/requests.jsonl" ||
            lab_fail "the $t token in the hub's log or request log"
    done
    lab_assert_eq "$(val journal_has_join_secret)" no "the join token's secret in the guest's journal"
}
