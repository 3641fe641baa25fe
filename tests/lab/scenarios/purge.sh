# shellcheck shell=bash disable=SC2034
# Scenario: `outpost uninstall --purge` after a real install (with the site
# CA in the trust store, under systemd, after check-ins) leaves the guest as
# it was: the same files with the same modes and owners under /etc,
# /usr/local, /var/lib and /opt, the same contents under /etc and /usr/local
# (the trust store bundle included), and the same enabled units.
LAB_DESC="uninstall --purge restores the file list, modes, contents and enabled units"
LAB_CI="no"
LAB_CI_SKIP="kept out of the 30-minute scripts/test budget"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    lab_userdata "$s/user-data"
    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "the guest's script failed"; }
set -eu
snap() {
    # /var/lib/systemd holds timers' stamps and the random seed, which
    # change by themselves; everything else must come back as it was.
    find /etc /usr/local /var/lib /opt -xdev -path /var/lib/systemd -prune -o \
        -printf '%p %M %u:%g %l\n' | LC_ALL=C sort >"$1.list"
    find /etc /usr/local -xdev -type f -exec sha256sum {} + | LC_ALL=C sort -k 2 >"$1.sums"
    # systemd can be slow to answer right after a daemon-reload on a
    # loaded machine ("Connection timed out"): try a few times.
    n=0
    until systemctl list-unit-files --no-legend --no-pager >"$1.units.raw"; do
        n=$((n + 1)); [ $n -lt 6 ] || exit 1; sleep 5
    done
    LC_ALL=C sort "$1.units.raw" >"$1.units"
}
snap before
./outpost install --config /mnt/lab/user-data
n=0
until [ "$(journalctl -q -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
    n=$((n + 1)); [ $n -lt 180 ] || { echo "no check-in"; exit 1; }; sleep 1
done
ls /usr/local/share/ca-certificates >installed.cas
snap installed
/usr/local/bin/outpost uninstall --purge
echo $? >uninstall.rc
snap after
for k in list sums units; do
    diff -u "before.$k" "after.$k" >"diff.$k" || true
done
GUEST
    lab_vm_out vm
    lab_assert_eq "$(cat "$s/uninstall.rc")" 0 "outpost uninstall --purge"
    # The install really changed things (so the comparison means something).
    grep -q outpost "$s/installed.cas" || lab_fail "install put no CA into /usr/local/share/ca-certificates"
    cmp -s "$s/before.list" "$s/installed.list" && lab_fail "the install changed no file (nothing to compare)"
    grep -q '^outpost.service ' "$s/installed.units" || lab_fail "outpost.service was not installed"
    local k
    for k in list sums units; do
        if [ -s "$s/diff.$k" ]; then
            cat "$s/diff.$k"
            lab_fail "after uninstall --purge the guest's $k differs from before the install (diff above)"
        fi
    done
}
