# shellcheck shell=bash disable=SC2034
# Scenario: the airgap bundle and install.sh --offline on the fit guest,
# under systemd: the unit is active, reached READY (StatusText), pings the
# watchdog, registers and checks in with the hub; `systemctl stop` is
# clean; deregistration on the hub ends the agent with exit 15, which
# RestartPreventExitStatus keeps from restarting. The systemd-analyze
# security score is printed for the record.
LAB_DESC="airgap bundle + install.sh --offline under systemd: READY, watchdog, check-ins, stop, exit 15"
LAB_CI="yes"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local share=$LAB_RUN/vm/share version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$LAB_ROOT/Cargo.toml" | head -1)
    "$LAB_ROOT/scripts/make-bundle" "$LAB_RUN/bundle" "$version" x86_64 "$share/outpost" >/dev/null
    cp "$LAB_RUN/bundle/outpost-$version-x86_64-airgap.tar.gz" "$share/bundle.tar.gz"
    rm "$share/outpost" # the guest gets the agent from the bundle only
    lab_userdata "$share/user-data"

    lab_vm_start vm "$LAB_DIR/scenarios/systemd.guest"
    # The guest says when it is registered; the hub then deregisters it.
    lab_vm_wait_file vm deregister-me 600
    local id
    id=$(cat "$share/deregister-me")
    lab_hub deregister "$id" >/dev/null
    touch "$share/deregistered"
    lab_vm_finish vm || { lab_vm_out vm; lab_fail "the guest's script failed"; }
    lab_vm_out vm

    local r=$share/results
    val() { sed -n "s/^$1=//p" "$r" | tail -1; }
    lab_assert_eq "$(val install_rc)" 0 "install.sh --offline exit status"
    lab_assert_eq "$(val active)" active "systemctl is-active outpost after install"
    lab_assert_eq "$(val type)" notify "the unit's Type"
    case $(val status_text) in
    "checked in; next at "*) ;;
    *) lab_fail "StatusText after READY: '$(val status_text)'" ;;
    esac
    lab_assert_eq "$(val watchdog_usec)" 2min "WatchdogUSec"
    [ "$(val watchdog_ts2)" -gt "$(val watchdog_ts1)" ] ||
        lab_fail "the watchdog was not pinged between two reads ($(val watchdog_ts1) -> $(val watchdog_ts2))"
    [ "$(val checkins)" -ge 3 ] || lab_fail "fewer than 3 check-ins logged ($(val checkins))"
    lab_assert_eq "$(val stop_rc)" 0 "systemctl stop outpost"
    lab_assert_eq "$(val stop_result)" success "Result after a stop"
    lab_assert_eq "$(val stopped_state)" inactive "ActiveState after a stop"
    lab_assert_eq "$(val dereg_status)" 15 "the agent's exit status after deregistration"
    lab_assert_eq "$(val dereg_state)" failed "ActiveState after exit 15"
    lab_assert_eq "$(val dereg_restarts)" 0 "restarts after exit 15 (RestartPreventExitStatus)"
    echo "systemd-analyze security: $(val security)"
    [ -n "$(val security)" ] || lab_fail "no systemd-analyze security score"

    # The hub's view: one device, checked in, then deregistered.
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "len(d['devices']) == 1 and d['devices'][0]['host_id'] == '$id'" \
        "exactly the guest is registered on the hub"
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['checkins'] >= 3" "check-ins the hub counted"
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['status'] == 'Unpaired'" "the device is deregistered"
    # The inventory sent under the unit's sandbox has the guest's address
    # (getifaddrs needs netlink, which RestrictAddressFamilies must allow).
    lab_assert_json "$LAB_RUN/devices.json" "d['devices'][0]['ip'] == '10.0.2.15' and d['devices'][0]['mac'] != ''" \
        "the guest's IP and MAC in the inventory sent from the service"
}
