#!/usr/bin/env bash
# The lab's harness, sourced by scripts/lab. Scenario files use the lab_*
# functions documented in docs/lab.md.

LAB_CACHE=${OUTPOST_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost-lab}
LAB_DIR="$LAB_ROOT/tests/lab"
APT_TIMEOUT=(-o DPkg::Lock::Timeout=600)

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages of the lab. qemu-system comes from bookworm-backports
# because the machine's qemu-utils is the backports one (10.x), which breaks
# bookworm's qemu-system-common 7.2; the backports suite is used through a
# private apt list dir, so /etc/apt is untouched and qemu-user-static stays.
LAB_PKGS_BASE=(mmdebstrap qemu-utils zstd e2fsprogs xz-utils python3 util-linux
    musl-tools gcc-aarch64-linux-gnu qemu-user-static openssl tinyproxy shellcheck)
LAB_PKGS_BPO=(qemu-system-x86 qemu-system-arm qemu-system-common qemu-system-data seabios)

lab_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

lab_deps() {
    local missing=() bpo=() p
    for p in "${LAB_PKGS_BASE[@]}"; do lab_pkg_installed "$p" || missing+=("$p"); done
    for p in "${LAB_PKGS_BPO[@]}"; do lab_pkg_installed "$p" || bpo+=("$p/bookworm-backports"); done
    if [ ${#missing[@]} -eq 0 ] && [ ${#bpo[@]} -eq 0 ]; then
        echo "lab packages present: ${LAB_PKGS_BASE[*]} ${LAB_PKGS_BPO[*]}"
        return 0
    fi
    local apt=$LAB_CACHE/apt mirror sec
    mirror=$(lab_mirror)
    sec=${mirror%/debian}/debian-security
    mkdir -p "$apt/lists/partial"
    cat >"$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $sec bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main
SRC
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$apt/lists" "${APT_TIMEOUT[@]}")
    echo "installing lab packages: ${missing[*]} ${bpo[*]}"
    as_root apt-get "${opts[@]}" update -qq
    # By name and suite, never -t bookworm-backports: that would also upgrade
    # qemu-user-static, which the aarch64 test runs rely on.
    DEBIAN_FRONTEND=noninteractive as_root apt-get "${opts[@]}" install -y -qq --no-install-recommends \
        "${missing[@]}" "${bpo[@]}" >/dev/null
}

# The Debian mirror this machine already uses (deb.debian.org otherwise).
lab_mirror() {
    local m
    m=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 | tr -d ' ') || true
    m=${m%/}
    echo "${m:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- images

lab_deb_arch() { case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; *) lab_die "unknown arch $1" ;; esac; }

# The image's cache directory: keyed by the architecture and a hash of every
# file of the recipe (tests/lab/image/), so a changed recipe builds anew.
lab_image_dir() {
    local h
    h=$(cd "$LAB_DIR/image" && cat ./* | sha256sum | cut -c1-16)
    echo "$LAB_CACHE/images/$1-$h"
}

lab_space_check() {
    local need_mb=$1 dir=$2 avail
    mkdir -p "$dir"
    avail=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
    if [ "$avail" -lt "$need_mb" ]; then
        lab_die "not enough disk space in $dir: ${avail} MB free, the lab needs ${need_mb} MB (set OUTPOST_LAB_CACHE elsewhere or free space)"
    fi
}

# Builds the image for ARCH unless cached. Output goes to a log file; the
# tail is printed on failure.
lab_image() {
    local arch=$1 dir t0 log
    dir=$(lab_image_dir "$arch")
    [ -f "$dir/base.qcow2" ] && return 0
    lab_space_check 4000 "$LAB_CACHE"
    mkdir -p "$LAB_CACHE/images"
    exec 9>"$dir.lock"
    flock 9
    if [ -f "$dir/base.qcow2" ]; then exec 9>&-; return 0; fi
    log=$dir.build.log
    lab_log "building the $arch image into $dir (log: $log)"
    t0=$(date +%s)
    local build=("$LAB_DIR/image/build.sh" "$(lab_deb_arch "$arch")" "$dir.tmp" "$(lab_mirror)")
    # --one-file-system: a build killed mid-way may have left mounts (proc, dev) in its rootfs.
    rm -rf --one-file-system "$dir.tmp"
    [ "$arch" = aarch64 ] && build=("$LAB_DIR/image/binfmt-ns.sh" "${build[@]}")
    if ! as_root nice "${build[@]}" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        exec 9>&-
        lab_die "building the $arch image failed (full log: $log)"
    fi
    mv "$dir.tmp" "$dir"
    exec 9>&-
    lab_log "built the $arch image in $(($(date +%s) - t0)) s"
}

# lab_images [ARCH...]: builds the missing images (both by default) at the
# same time: the x86_64 one (mostly downloads and dpkg) fits inside the
# arm64 one (package scripts under qemu-user), so a first run waits for
# the longer build only, not the sum.
lab_images() {
    local a pids=() rc=0 t0 p
    [ $# -gt 0 ] || set -- x86_64 aarch64
    t0=$(date +%s)
    if [ $# -eq 1 ]; then
        lab_image "$1"
    else
        for a in "$@"; do
            lab_image "$a" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || rc=$?; done
        [ "$rc" -eq 0 ] || lab_die "building the images failed (see above)"
    fi
    for a in "$@"; do echo "$a: $(lab_image_dir "$a")"; done
    lab_log "images ready in $(($(date +%s) - t0)) s"
}

# ---------------------------------------------------------------- binaries

# The agent for guests is the static musl build of each architecture; the
# hub runs natively on the host. OUTPOST_LAB_BIN_X86_64,
# OUTPOST_LAB_BIN_AARCH64 and OUTPOST_LAB_HUB name prebuilt ones; otherwise
# they are built here (debug, as the other tests use).
lab_agent_bin() {
    local arch=$1 var
    var=OUTPOST_LAB_BIN_${arch^^}
    if [ -n "${!var:-}" ]; then
        echo "${!var}"
        return
    fi
    (cd "$LAB_ROOT" && nice cargo build -q --target "$arch-unknown-linux-musl" --bin outpost) >&2 ||
        lab_die "building outpost for $arch failed"
    echo "$LAB_ROOT/target/$arch-unknown-linux-musl/debug/outpost"
}

lab_hub_bin() {
    if [ -n "${OUTPOST_LAB_HUB:-}" ]; then
        echo "$OUTPOST_LAB_HUB"
        return
    fi
    (cd "$LAB_ROOT" && nice cargo build -q --target x86_64-unknown-linux-musl -p outpost-hub --bin outpost-hub) >&2 ||
        lab_die "building outpost-hub failed"
    echo "$LAB_ROOT/target/x86_64-unknown-linux-musl/debug/outpost-hub"
}

# ---------------------------------------------------------------- guests
#
# A guest is a directory $LAB_RUN/NAME: disk.qcow2 (a throwaway overlay over
# the cached base image, so it keeps its state across boots of one
# scenario), share/ (the 9p share, /mnt/lab in the guest, with the agent
# binary as share/outpost), console.log (every boot appended).

LAB_TIMEOUT=${OUTPOST_LAB_TIMEOUT:-900}

# lab_vm_new NAME [SHAPE] [ARCH]: SHAPE fit (4 vCPUs, 4400 MiB, 32 GiB SSD)
# or unfit (2 vCPUs, 2 GiB, 16 GiB rotational disk); ARCH x86_64 or aarch64.
lab_vm_new() {
    local name=$1 shape=${2:-fit} arch=${3:-x86_64} dir size
    dir=$LAB_RUN/$name
    case $shape in fit) size=32G ;; unfit) size=16G ;; *) lab_die "unknown shape $shape (fit, unfit)" ;; esac
    lab_image "$arch"
    mkdir -p "$dir/share"
    qemu-img create -q -f qcow2 -F qcow2 -b "$(lab_image_dir "$arch")/base.qcow2" "$dir/disk.qcow2" "$size"
    printf '%s\n' "$shape" >"$dir/shape"
    printf '%s\n' "$arch" >"$dir/arch"
    install -m 0755 "$(lab_agent_bin "$arch")" "$dir/share/outpost"
    : >"$dir/console.log"
    echo 0 >"$dir/boots"
}

lab_vm_qemu() { # NAME KERNEL-EXTRA -> the qemu command line, one word a line
    local dir=$LAB_RUN/$1 extra=$2 shape arch img smp mem rot con
    shape=$(cat "$dir/shape") arch=$(cat "$dir/arch") img=$(lab_image_dir "$(cat "$dir/arch")")
    case $shape in fit) smp=4 mem=4400M rot=1 ;; unfit) smp=2 mem=2048M rot=7200 ;; esac
    local q=()
    case $arch in
    x86_64) q=(qemu-system-x86_64 -machine q35 -cpu max) con=ttyS0 ;;
    aarch64) q=(qemu-system-aarch64 -machine virt -cpu "max,pauth-impdef=on") con=ttyAMA0 ;;
    esac
    local root=LABEL=outpost-root more=()
    if [ -f "$dir/disk2" ]; then
        # A second disk (a copy of the image, e.g. one to bake) on
        # virtio-blk as /dev/vda: its label is the same, so the guest's
        # root is named as the only SCSI disk.
        root=/dev/sda
        more=(-drive "if=none,id=d1,file=$(cat "$dir/disk2"),format=qcow2,cache=writeback"
            -device "virtio-blk-pci,drive=d1")
    fi
    q+=(-accel "tcg" -smp "$smp" -m "$mem" -nodefaults -display none -no-reboot
        -kernel "$img/kernel" -initrd "$img/initrd.img"
        -append "root=$root rw console=$con panic=-1 $extra" "${more[@]}"
        -drive "if=none,id=d0,file=$dir/disk.qcow2,format=qcow2,discard=unmap,cache=writeback"
        -device "virtio-scsi-pci,id=scsi0" -device "scsi-hd,bus=scsi0.0,drive=d0,rotation_rate=$rot"
        -netdev "user,id=n0" -device "virtio-net-pci,netdev=n0" -device virtio-rng-pci
        -virtfs "local,path=$dir/share,mount_tag=lab,security_model=none,id=lab")
    printf '%s\n' "${q[@]}"
}

# lab_vm_start NAME [SCRIPT] : boots the guest in the background; the
# guest runs SCRIPT (a file, or stdin) as root from /mnt/lab, then powers off.
lab_vm_start() {
    local name=$1 dir=$LAB_RUN/$1 n
    if [ $# -ge 2 ]; then cp "$2" "$dir/share/run.sh"; else cat >"$dir/share/run.sh"; fi
    rm -f "$dir/share/rc" "$dir/share/rc.tmp" "$dir/share/out.txt" "$dir/share/stay"
    n=$(($(cat "$dir/boots") + 1))
    echo "$n" >"$dir/boots"
    printf '\n===== lab: boot %s of %s at %s =====\n' "$n" "$name" "$(date -u +%FT%TZ)" >>"$dir/console.log"
    local q=()
    mapfile -t q < <(lab_vm_qemu "$name" "systemd.getty_auto=0")
    timeout -k 10 "$LAB_TIMEOUT" "${q[@]}" -monitor none -pidfile "$dir/qemu.pid" \
        -chardev "file,id=s0,path=$dir/console.log,append=on" -serial chardev:s0 \
        </dev/null >>"$dir/qemu.log" 2>&1 &
    echo $! >"$dir/wrapper.pid"
}

lab_console_tail() {
    local dir=$LAB_RUN/$1
    echo "---- console of $1 (last ${2:-40} lines; full log: $dir/console.log) ----" >&2
    tail -n "${2:-40}" "$dir/console.log" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >&2
    if [ -s "$dir/qemu.log" ]; then
        echo "---- qemu stderr ----" >&2
        tail -n 10 "$dir/qemu.log" >&2
    fi
    echo "----" >&2
}

# lab_vm_wait NAME: waits for the guest to power off (bounded by
# OUTPOST_LAB_TIMEOUT seconds from its start). 0 when qemu exited cleanly.
lab_vm_wait() {
    local dir=$LAB_RUN/$1 rc=0
    wait "$(cat "$dir/wrapper.pid")" || rc=$?
    rm -f "$dir/wrapper.pid"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        lab_log "$1: the guest did not power off within ${LAB_TIMEOUT}s"
        lab_console_tail "$1"
        return 124
    elif [ "$rc" -ne 0 ]; then
        lab_log "$1: qemu exited with $rc"
        lab_console_tail "$1"
    fi
    return "$rc"
}

# lab_vm_boot NAME [SCRIPT]: boot, run SCRIPT (file or stdin), power off;
# returns the script's exit status (share/rc); its output is share/out.txt.
lab_vm_boot() {
    lab_vm_start "$@"
    lab_vm_finish "$1"
}

# lab_vm_finish NAME: the second half of lab_vm_boot, for guests started
# with lab_vm_start (e.g. several at once).
lab_vm_finish() {
    local dir=$LAB_RUN/$1 t0
    t0=$(stat -c %Y "$dir/boots")
    lab_vm_wait "$1" || return $?
    # lab-run writes rc.tmp then renames it: a script that ends by
    # rebooting or powering off the guest can have lab-run stopped between
    # the two. rc.tmp holding a number is the script's finished status.
    if [ ! -f "$dir/share/rc" ] && grep -qx '[0-9]\{1,3\}' "$dir/share/rc.tmp" 2>/dev/null; then
        lab_log "$1: the guest shut down before lab-run renamed rc.tmp; using it"
        mv "$dir/share/rc.tmp" "$dir/share/rc"
    fi
    if [ ! -f "$dir/share/rc" ]; then
        lab_log "$1: the guest powered off without running the script"
        lab_console_tail "$1"
        return 125
    fi
    lab_log "$1: boot $(cat "$dir/boots") done in $(($(date +%s) - t0)) s, script exit $(cat "$dir/share/rc")"
    return "$(cat "$dir/share/rc")"
}

# lab_vm_wait_file NAME FILE [SECONDS]: waits until the guest creates
# share/FILE (while it runs); fails if qemu exits or time runs out.
lab_vm_wait_file() {
    local dir=$LAB_RUN/$1 f=$2 limit=${3:-$LAB_TIMEOUT} i=0
    while [ ! -e "$dir/share/$f" ]; do
        if ! kill -0 "$(cat "$dir/wrapper.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
            lab_log "$1: the guest stopped before creating $f"
            lab_console_tail "$1"
            return 1
        fi
        if [ "$i" -ge "$limit" ]; then
            lab_log "$1: no $f from the guest within ${limit}s"
            lab_console_tail "$1"
            return 1
        fi
        sleep 1
        i=$((i + 1))
    done
}

# lab_vm_kill NAME: a power cut: qemu is killed at once (SIGKILL), so
# whatever the guest had not flushed to its disk is lost.
lab_vm_kill() {
    local dir=$LAB_RUN/$1
    kill -KILL "$(cat "$dir/qemu.pid")" 2>/dev/null || true
    wait "$(cat "$dir/wrapper.pid")" 2>/dev/null || true
    rm -f "$dir/wrapper.pid"
    printf '\n===== lab: power cut at %s =====\n' "$(date -u +%FT%TZ)" >>"$dir/console.log"
}

# lab_vm_out NAME: the last script's output (stdout and stderr).
lab_vm_out() { cat "$LAB_RUN/$1/share/out.txt"; }

# ---------------------------------------------------------------- hub

# lab_hub_start: a fresh outpost-hub on 127.0.0.1 (a free port) with TLS
# from a CA made now; guests reach it at https://10.0.2.2:PORT. Sets
# LAB_HUB_URL (guest view), LAB_HUB_PORT, LAB_HUB_CA (PEM file).
lab_hub_start() {
    local d=$LAB_RUN/hub hub i
    mkdir -p "$d"
    hub=$(lab_hub_bin)
    (
        cd "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
            -days 30 -subj "/CN=outpost lab CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout hub.key -out hub.csr -subj /CN=outpost-lab-hub
        printf 'subjectAltName=IP:10.0.2.2,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >hub.ext
        openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out hub.pem -days 30 -extfile hub.ext
    ) >"$d/pki.log" 2>&1 || { cat "$d/pki.log" >&2; lab_die "making the hub's certificates failed"; }
    "$hub" --db "$d/hub.db" serve --listen 127.0.0.1:0 --tls-cert "$d/hub.pem" --tls-key "$d/hub.key" \
        --request-log "$d/requests.jsonl" >"$d/hub.out" 2>"$d/hub.err" &
    echo $! >"$d/pid"
    for i in $(seq 100); do
        # The background shell may not have opened hub.out yet: a missing
        # file is "not yet", not a failure (set -e would end the scenario).
        LAB_HUB_PORT=$(sed -n 's|^listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$d/hub.out" 2>/dev/null || true)
        [ -n "$LAB_HUB_PORT" ] && break
        kill -0 "$(cat "$d/pid")" 2>/dev/null || { cat "$d/hub.err" >&2; lab_die "outpost-hub did not start"; }
        sleep 0.1
    done
    [ -n "$LAB_HUB_PORT" ] || lab_die "outpost-hub did not say where it listens after ${i} tries"
    LAB_HUB_URL=https://10.0.2.2:$LAB_HUB_PORT
    LAB_HUB_CA=$d/ca.pem
    LAB_HUB_BIN=$hub
}

lab_hub_stop() {
    local d=$LAB_RUN/hub
    [ -f "$d/pid" ] || return 0
    kill "$(cat "$d/pid")" 2>/dev/null || true
    wait "$(cat "$d/pid")" 2>/dev/null || true
    rm -f "$d/pid"
}

# lab_hub ARGS...: the hub's admin CLI on the lab's database.
lab_hub() { "$LAB_HUB_BIN" --db "$LAB_RUN/hub/hub.db" "$@"; }

# lab_userdata FILE [YAML-LINES-UNDER-stylus.site]: a user-data for the
# lab's hub with a fresh token, the lab CA and test-friendly intervals.
lab_userdata() {
    local f=$1 extra=${2:-} token
    token=$(lab_hub token create --project lab --expires 1d 2>/dev/null | head -1)
    [ -n "$token" ] || lab_die "creating a hub token failed"
    {
        echo '#cloud-config'
        echo 'stylus:'
        echo '  site:'
        echo "    paletteEndpoint: $LAB_HUB_URL"
        echo "    edgeHostToken: $token"
        echo '    projectName: lab'
        echo '    caCerts:'
        echo '      - |'
        sed 's/^/        /' "$LAB_HUB_CA"
        [ -z "$extra" ] || printf '%s\n' "$extra"
        echo 'outpost:'
        echo '  logLevel: info' # the scenarios count "checked in" lines in the journal
        echo '  interval:'
        echo '    min: 10'
    } >"$f"
    chmod 0600 "$f"
}

# ---------------------------------------------------------------- asserts

lab_fail() {
    printf 'lab: FAIL: %s\n' "$*" >&2
    exit 1
}

# lab_json FILE PYTHON-EXPR: prints the expression evaluated with d = the
# parsed JSON document of FILE (python3).
lab_json() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=eval(sys.argv[2]); print(json.dumps(r) if not isinstance(r,str) else r)' "$1" "$2"
}

# lab_assert_json FILE PYTHON-EXPR [MESSAGE]: fails the scenario unless the
# expression is true for the document.
lab_assert_json() {
    local got
    got=$(lab_json "$1" "$2") || lab_fail "${3:-$2}: cannot evaluate on $1"
    [ "$got" = true ] || lab_fail "${3:-assertion} ($2 is $got in $1)"
}

lab_assert_eq() { # GOT WANT MESSAGE
    [ "$1" = "$2" ] || lab_fail "$3: got '$1', want '$2'"
}

# ---------------------------------------------------------------- scenarios

lab_scenarios() {
    local f
    for f in "$LAB_DIR"/scenarios/*.sh; do basename "$f" .sh; done
}

lab_scenario_field() { # NAME FIELD
    sed -n "s/^$2=\"\\(.*\\)\"\$/\\1/p" "$LAB_DIR/scenarios/$1.sh" | head -1
}

lab_list() {
    local n
    printf '%-16s %-4s %s\n' SCENARIO CI WHAT
    for n in $(lab_scenarios); do
        printf '%-16s %-4s %s\n' "$n" "$([ "$(lab_scenario_field "$n" LAB_CI)" = yes ] && echo yes || echo no)" \
            "$(lab_scenario_field "$n" LAB_DESC)"
    done
}

# Runs one scenario in a subshell; its guests and hub live under a fresh
# run directory, removed when it passed and kept (with consoles) otherwise.
lab_run_one() {
    local name=$1 f=$LAB_DIR/scenarios/$1.sh rc=0 run
    [ -f "$f" ] || lab_die "no scenario $name (see scripts/lab list)"
    run=$LAB_CACHE/runs/$name-$(date -u +%Y%m%dT%H%M%S)-$BASHPID
    mkdir -p "$run"
    # A bash of its own, so that errexit holds inside the scenario.
    # shellcheck disable=SC2016
    LAB_RUN=$run bash -euo pipefail -c '. "$LAB_ROOT/tests/lab/lib.sh"; trap lab_cleanup EXIT; . "$1"; scenario' \
        lab "$f" || rc=$?
    if [ "$rc" -eq 0 ]; then
        rm -rf "$run"
    else
        lab_log "$name failed (exit $rc); its guests' consoles and files are kept in $run"
    fi
    return "$rc"
}

# Stops whatever a scenario left running: guests, the hub, host helpers
# listed in $LAB_RUN/pids.
lab_cleanup() {
    local d p
    for d in "$LAB_RUN"/*/; do
        [ -f "$d/wrapper.pid" ] || continue
        [ -f "$d/qemu.pid" ] && kill -KILL "$(cat "$d/qemu.pid")" 2>/dev/null
        wait "$(cat "$d/wrapper.pid")" 2>/dev/null
    done
    lab_hub_stop
    if [ -f "$LAB_RUN/pids" ]; then
        while read -r p; do kill "$p" 2>/dev/null; done <"$LAB_RUN/pids"
    fi
    true
}

# lab_run [-j N] NAME... | --all | --ci: runs scenarios and prints a table of
# results and times. With -j N (or OUTPOST_LAB_JOBS), N at a time: each
# one's output is then printed whole when all are done. Exit 0 only when
# every one passed.
lab_run() {
    local names=() n jobs=${OUTPOST_LAB_JOBS:-1} fails=0 logs rc dt
    if [ "${1:-}" = -j ]; then
        jobs=${2:?-j needs a number}
        shift 2
    fi
    case ${1:-} in
    --all) mapfile -t names < <(lab_scenarios) ;;
    --ci) for n in $(lab_scenarios); do [ "$(lab_scenario_field "$n" LAB_CI)" = yes ] && names+=("$n"); done ;;
    "") lab_die "run what? (scripts/lab list)" ;;
    *) names=("$@") ;;
    esac
    for n in "${names[@]}"; do [ -f "$LAB_DIR/scenarios/$n.sh" ] || lab_die "no scenario $n (see scripts/lab list)"; done
    lab_space_check 3000 "$LAB_CACHE"
    logs=$(mktemp -d)
    local order=("${names[@]}")
    [ "$jobs" -le 1 ] || mapfile -t order < <(lab_longest_first "${names[@]}")
    for n in "${order[@]}"; do
        if [ "$jobs" -le 1 ]; then
            printf '\n--> lab scenario %s: %s\n' "$n" "$(lab_scenario_field "$n" LAB_DESC)"
            lab_run_timed "$n" "$logs"
            printf '<-- lab scenario %s: %s\n' "$n" "$(lab_result_word "$logs/$n.result")"
        else
            while [ "$(jobs -pr | wc -l)" -ge "$jobs" ]; do wait -n || true; done
            lab_log "starting scenario $n"
            lab_run_timed "$n" "$logs" >"$logs/$n.log" 2>&1 &
        fi
    done
    wait || true
    if [ "$jobs" -gt 1 ]; then
        for n in "${names[@]}"; do
            printf '\n--> lab scenario %s: %s\n' "$n" "$(lab_scenario_field "$n" LAB_DESC)"
            cat "$logs/$n.log"
            printf '<-- lab scenario %s: %s\n' "$n" "$(lab_result_word "$logs/$n.result")"
        done
    fi
    printf '\nlab scenarios (%s at a time):\n' "$jobs"
    for n in "${names[@]}"; do
        read -r rc dt <"$logs/$n.result" || { rc=1 dt='?'; }
        [ "$rc" -eq 0 ] || fails=$((fails + 1))
        printf '  %-16s %s %5ss\n' "$n" "$(lab_result_word "$logs/$n.result")" "$dt"
    done
    rm -rf "$logs"
    [ "$fails" -eq 0 ]
}

lab_run_timed() { # NAME DIR: runs one scenario, writes DIR/NAME.result "rc seconds"
    local t0 rc=0 dt
    t0=$(date +%s)
    lab_run_one "$1" || rc=$?
    dt=$(($(date +%s) - t0))
    echo "$rc $dt" >"$2/$1.result"
    if [ "$rc" -eq 0 ]; then
        mkdir -p "$LAB_CACHE/times"
        echo "$dt" >"$LAB_CACHE/times/$1"
    fi
}

# lab_longest_first NAME...: the names, the longest last passing run first
# (never run: first of all), so N-at-a-time runs do not end with one long
# scenario alone.
lab_longest_first() {
    local n t
    for n in "$@"; do
        t=$(cat "$LAB_CACHE/times/$n" 2>/dev/null || echo 999999)
        printf '%s %s\n' "$t" "$n"
    done | sort -k1,1nr -k2 | cut -d' ' -f2
}

lab_result_word() { if [ "$(cut -d' ' -f1 "$1" 2>/dev/null)" = 0 ]; then echo pass; else echo FAIL; fi; }

# lab_shell [SHAPE] [ARCH]: a guest with a root shell on the console (the
# scenario service does not run); the agent is in /mnt/lab after
# `mount -t 9p -o trans=virtio lab /mnt/lab`. `poweroff` (or Ctrl-A x) ends it.
lab_shell() {
    local shape=${1:-fit} arch=${2:-x86_64} q=()
    LAB_RUN=$LAB_CACHE/runs/shell-$$
    trap 'rm -rf "$LAB_RUN"' EXIT
    lab_vm_new shell "$shape" "$arch"
    mapfile -t q < <(lab_vm_qemu shell lab.norun)
    lab_log "booting a $shape $arch guest (root autologin; the 9p share is $LAB_RUN/shell/share)"
    "${q[@]}" -serial mon:stdio
}

# lab_ci: what scripts/test runs. Installs the packages, lints the lab's
# shell, builds (or reuses) both images, runs the scenarios marked
# LAB_CI="yes" and names the ones left out and why.
lab_ci() {
    lab_deps
    shellcheck "$LAB_ROOT/scripts/lab" "$LAB_DIR/lib.sh" "$LAB_DIR"/image/*.sh "$LAB_DIR"/scenarios/*.sh
    shellcheck -s sh "$LAB_DIR"/scenarios/*.guest "$LAB_DIR"/image/lab-run.sh
    lab_images x86_64 aarch64
    # The agents and the hub once for all scenarios: otherwise every guest
    # and hub runs cargo, a few seconds each under load, waiting for the
    # others' cargo lock when scenarios run at once.
    OUTPOST_LAB_BIN_X86_64=$(lab_agent_bin x86_64)
    OUTPOST_LAB_BIN_AARCH64=$(lab_agent_bin aarch64)
    OUTPOST_LAB_HUB=$(lab_hub_bin)
    export OUTPOST_LAB_BIN_X86_64 OUTPOST_LAB_BIN_AARCH64 OUTPOST_LAB_HUB
    local n rc=0
    lab_run -j "${OUTPOST_LAB_JOBS:-2}" --ci || rc=$?
    for n in $(lab_scenarios); do
        [ "$(lab_scenario_field "$n" LAB_CI)" = yes ] ||
            printf '  %-16s not run here: %s (scripts/lab run %s)\n' "$n" "$(lab_scenario_field "$n" LAB_CI_SKIP)" "$n"
    done
    return "$rc"
}

lab_main() {
    local cmd=${1:-help}
    shift || true
    case $cmd in
    deps) lab_deps ;;
    images) lab_images "$@" ;;
    list) lab_list ;;
    shell) lab_shell "$@" ;;
    ci) lab_ci ;;
    run) lab_run "$@" ;;
    help | -h | --help) sed -n '2,11p' "$LAB_ROOT/scripts/lab" | sed 's/^# \{0,1\}//' ;;
    *) lab_die "unknown command $cmd (try: scripts/lab help)" ;;
    esac
}
