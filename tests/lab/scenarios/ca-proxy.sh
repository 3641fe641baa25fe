# shellcheck shell=bash disable=SC2034
# Scenario: site properties reach the host. The site CA from caCerts lands
# in the guest's trust store (update-ca-certificates ran: the system's curl,
# which knows nothing of outpost, trusts the hub afterwards and did not
# before), and the proxy from the user-data reaches the service: the hub's
# endpoint is https://127.0.0.1:PORT, which only the host's tinyproxy
# (at 10.0.2.2 from the guest) can reach, and tinyproxy logs the CONNECT.
LAB_DESC="site CA lands in the trust store; the service checks in through a tinyproxy (CONNECT seen)"
LAB_CI="no"
LAB_CI_SKIP="kept out of the 30-minute scripts/test budget"

scenario() {
    lab_hub_start
    lab_hub set-interval 10 >/dev/null
    local p=$LAB_RUN/proxy port s
    mkdir -p "$p"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$p/tinyproxy.conf" <<CONF
Port $port
Listen 127.0.0.1
Timeout 60
MaxClients 20
LogFile "$p/tinyproxy.log"
LogLevel Connect
Allow 127.0.0.1
CONF
    tinyproxy -d -c "$p/tinyproxy.conf" >"$p/stdout" 2>&1 &
    echo $! >>"$LAB_RUN/pids"
    lab_vm_new vm fit x86_64
    s=$LAB_RUN/vm/share
    # The endpoint is the host's loopback, reachable only through the proxy.
    LAB_HUB_URL=https://127.0.0.1:$LAB_HUB_PORT
    lab_userdata "$s/user-data" "    network:
      httpsProxy: http://10.0.2.2:$port"
    echo "$LAB_HUB_PORT" >"$s/hubport"
    lab_vm_boot vm <<'GUEST' || { lab_vm_out vm; lab_fail "the guest's script failed"; }
set -u
url=https://10.0.2.2:$(cat hubport)/outpost/v1/probe
curl -sS --noproxy '*' -o /dev/null "$url"
echo $? >curl.before
./outpost install --config /mnt/lab/user-data
echo $? >install.rc
curl -sS --noproxy '*' -o /dev/null "$url"
echo $? >curl.after
ls /usr/local/share/ca-certificates/ /etc/ssl/certs | grep outpost
i=0
until [ "$(journalctl -q -u outpost.service -o cat | grep -c 'checked in')" -ge 1 ]; do
    i=$((i + 1)); [ $i -lt 180 ] || break; sleep 1
done
journalctl -q -u outpost.service -o cat --no-pager | tail -n 5
tr '\0' '\n' <"/proc/$(systemctl show -p MainPID --value outpost.service)/environ" | grep -i '_proxy=' >service.env
cat service.env
journalctl -q -u outpost.service -o cat | grep -c 'checked in' >checkins
GUEST
    lab_vm_out vm
    [ "$(cat "$s/curl.before")" != 0 ] || lab_fail "the guest trusted the lab CA before the install (the test proves nothing)"
    lab_assert_eq "$(cat "$s/install.rc")" 0 "outpost install"
    lab_assert_eq "$(cat "$s/curl.after")" 0 "curl with the system trust store after the install"
    grep -q "10.0.2.2:$port" "$s/service.env" || lab_fail "outpost.service has no proxy variable naming the proxy"
    [ "$(cat "$s/checkins")" -ge 1 ] || lab_fail "no check-in through the proxy"
    grep -q "CONNECT 127.0.0.1:$LAB_HUB_PORT" "$p/tinyproxy.log" ||
        { tail -n 20 "$p/tinyproxy.log"; lab_fail "tinyproxy saw no CONNECT to the hub"; }
    lab_hub devices --json >"$LAB_RUN/devices.json"
    lab_assert_json "$LAB_RUN/devices.json" 'len(d["devices"]) == 1 and d["devices"][0]["checkins"] >= 1' \
        "the hub has the guest's check-in"
}
