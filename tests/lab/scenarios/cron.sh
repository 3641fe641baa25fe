# shellcheck shell=bash disable=SC2034
# Scenario: the cron scheduler on a guest running cron. `outpost install
# --scheduler cron` writes /etc/cron.d/outpost (no unit), cron runs
# `outpost checkin --splay 240` every 5 minutes: the hub sees the
# registration and then check-ins, each one 0-240 s (plus the time a
# check-in takes) after a 5-minute mark, from the one host ID.
LAB_DESC="cron scheduler: check-ins every 5 minutes with up to 240 s of splay"
LAB_CI="no"
LAB_CI_SKIP="needs 3 cron periods (15 min) of guest time"

scenario() {
    LAB_TIMEOUT=2000 # this guest stays up for three cron periods
    lab_hub_start
    lab_vm_new vm fit x86_64
    local s=$LAB_RUN/vm/share
    lab_userdata "$s/user-data"
    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "the guest's script failed"; }
set -eu
systemctl enable --now cron.service
./outpost install --config /mnt/lab/user-data --scheduler cron
cat /etc/cron.d/outpost
test ! -e /etc/systemd/system/outpost.service && echo "no systemd unit: good"
# Three cron periods: the first run registers, the next ones check in.
i=0
until [ -s /var/lib/outpost/status.json ] && [ "$(jq -r '.last_success // empty' /var/lib/outpost/status.json)" != "" ] &&
    [ "$(journalctl -q -u cron.service -o cat | grep -c 'CMD (/usr/local/bin/outpost checkin --splay 240')" -ge 3 ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "fewer than 3 cron runs in 20 min"; break; }
    sleep 1
done
sleep 250 # let the last splayed check-in finish
journalctl -q -u cron.service -o short-iso --no-pager | grep outpost | tail -n 5
/usr/local/bin/outpost status
cat /var/lib/outpost/host-id >host-id
GUEST
    lab_vm_out vm
    local log=$LAB_RUN/hub/requests.jsonl
    python3 - "$log" <<'PY' || lab_fail "the check-ins did not follow the cron schedule with its splay"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in reqs if r["status"] == 200 and r["path"] in ("/outpost/v1/register", "/outpost/v1/checkin")]
print("requests (UTC seconds past the 5-minute mark):")
marks = []
for r in ok:
    off = (r["t_ms"] / 1000.0) % 300
    marks.append(int(r["t_ms"] / 1000 // 300))
    print(f"  {r['path']:24} +{off:6.1f} s")
regs = [r for r in ok if r["path"] == "/outpost/v1/register"]
assert len(regs) == 1, f"{len(regs)} registrations, want 1"
assert len([r for r in ok if r["path"] == "/outpost/v1/checkin"]) >= 2, "fewer than 2 check-ins"
# A check-in registers first (same run, same 5-minute period), so group by period.
periods = sorted(set(marks))
assert len(periods) >= 3, f"check-ins in {len(periods)} 5-minute periods, want >= 3"
for r in ok:
    off = (r["t_ms"] / 1000.0) % 300
    assert off <= 240 + 30, f"a request {off:.1f} s after the 5-minute mark: more than the 240 s splay"
PY
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" "[x['host_id'] for x in d['devices']] == ['$(cat "$s/host-id")']" \
        "the hub has exactly the guest"
}
