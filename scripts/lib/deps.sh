# shellcheck shell=bash
# The one place that installs what outpost's scripts need: sourced by
# scripts/deps (and through it by scripts/test, scripts/build-release and
# scripts/bench). The list itself is data, in scripts/deps.list.
#
#   deps_print GROUP...    the entries of these groups, one per line
#   deps_missing GROUP...  entries not installed yet (KIND NAME per line)
#   deps_ensure GROUP...   install what is missing, then deps_smoke; with
#                          OUTPOST_DEPS=check it installs nothing and fails
#                          with one line naming what is missing and the
#                          command that installs it
#   deps_smoke             compile a tiny C file with each C toolchain the
#                          builds use; one line naming the package on failure
#   deps_audit             every Recommends of a listed Debian package is
#                          listed or declined (`skip`): reads apt's metadata
#                          only, so it fails on a machine that happens to
#                          have the package as well as on a fresh one
# Must be sourced from bash with `set -euo pipefail`.

DEPS_ROOT=${DEPS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DEPS_LIST=${DEPS_LIST:-$DEPS_ROOT/scripts/deps.list}
DEPS_APT=(apt-get -o DPkg::Lock::Timeout=600)

deps_die() {
    echo "deps: $*" >&2
    exit 1
}

# Entries (KIND NAME) whose GROUPS column names one of the given groups;
# all entries except skips when no group is given.
deps_entries() {
    local groups kind name rest line g want
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        read -r groups kind name rest <<<"$line" || true
        [ -n "${groups:-}" ] || continue
        if [ -z "${name:-}" ] || [ -n "${rest:-}" ]; then
            deps_die "$DEPS_LIST: bad line: $line"
        fi
        case $kind in
            deb | skip | toolchain | target | component | cargo | pip) ;;
            *) deps_die "$DEPS_LIST: unknown kind '$kind' in: $line" ;;
        esac
        if [ $# -eq 0 ]; then
            [ "$kind" = skip ] || echo "$kind $name"
            continue
        fi
        for want in "$@"; do
            for g in ${groups//,/ }; do
                if [ "$g" = "$want" ]; then
                    echo "$kind $name"
                    continue 3
                fi
            done
        done
    done <"$DEPS_LIST"
}

deps_print() {
    deps_entries "$@" | sort -u
}

deps_has_deb() {
    local pkg=${1%%/*} suite=${1#*/}
    local st ver
    st=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg" 2>/dev/null) || return 1
    case $st in "ii "*) ;; *) return 1 ;; esac
    ver=${st#ii  }
    # pkg/SUITE-backports: the installed version must be a backport.
    if [ "$suite" != "$1" ]; then
        case $suite in *-backports) [[ $ver == *bpo* ]] || return 1 ;; esac
    fi
    return 0
}

deps_split_at() { # NAME@TOOLCHAIN -> "NAME TOOLCHAIN" (TOOLCHAIN empty when absent)
    case $1 in
        *@*) echo "${1%@*} ${1##*@}" ;;
        *) echo "$1 " ;;
    esac
}

deps_has() {
    local kind=$1 name=$2 n tc
    case $kind in
        deb) deps_has_deb "$name" ;;
        toolchain) rustup toolchain list 2>/dev/null | grep -q "^$name" ;;
        target | component)
            read -r n tc <<<"$(deps_split_at "$name")"
            rustup "$kind" list --installed ${tc:+--toolchain "$tc"} 2>/dev/null | grep -q "^$n"
            ;;
        cargo) command -v "${name%@*}" >/dev/null 2>&1 ;;
        pip) [ -x "$(deps_venv)/bin/python3" ] && "$(deps_venv)/bin/python3" -m pip show -q "${name%%=*}" >/dev/null 2>&1 ;;
    esac
}

# The Python venv that `pip` entries go into (tests find it at the same path).
deps_venv() {
    echo "${OUTPOST_PY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost/venv}"
}

deps_missing() {
    local kind name
    while read -r kind name; do
        deps_has "$kind" "$name" || echo "$kind $name"
    done < <(deps_print "$@")
}

deps_sudo() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 127
    fi
}

deps_install_cmd() { # the command a user would type for these entries
    local kind=$1
    shift
    case $kind in
        deb) echo "sudo apt-get install --no-install-recommends $*" ;;
        toolchain) echo "rustup toolchain install --profile minimal $*" ;;
        target) echo "rustup target add $*" ;;
        component) echo "rustup component add $*" ;;
        cargo) echo "cargo install --locked $*" ;;
        pip) echo "python3 -m venv $(deps_venv) && $(deps_venv)/bin/pip install $*" ;;
    esac
}

deps_report_missing() { # KIND NAME...: one line, false when any is missing
    local kind=$1
    shift
    [ $# -gt 0 ] || return 0
    echo "deps: missing ($kind): $*; install with: $(deps_install_cmd "$kind" "$@")" >&2
    return 1
}

deps_ensure() {
    local kind name n tc
    local -a debs=() toolchains=() targets=() components=() crates=() pips=()
    while read -r kind name; do
        case $kind in
            deb) debs+=("$name") ;;
            toolchain) toolchains+=("$name") ;;
            target) targets+=("$name") ;;
            component) components+=("$name") ;;
            cargo) crates+=("$name") ;;
            pip) pips+=("$name") ;;
        esac
    done < <(deps_missing "$@")

    if [ "${OUTPOST_DEPS:-install}" = check ]; then
        local missing=0
        deps_report_missing deb "${debs[@]}" || missing=1
        deps_report_missing toolchain "${toolchains[@]}" || missing=1
        deps_report_missing target "${targets[@]}" || missing=1
        deps_report_missing component "${components[@]}" || missing=1
        deps_report_missing cargo "${crates[@]}" || missing=1
        deps_report_missing pip "${pips[@]}" || missing=1
        [ $missing -eq 0 ] || exit 1
    fi

    if [ ${#debs[@]} -gt 0 ]; then
        echo "deps: installing Debian packages: ${debs[*]}"
        local st=0
        deps_sudo "${DEPS_APT[@]}" update -qq || st=$?
        if [ $st -eq 0 ]; then
            DEBIAN_FRONTEND=noninteractive deps_sudo "${DEPS_APT[@]}" install -y -qq \
                --no-install-recommends "${debs[@]}" >/dev/null || st=$?
        fi
        [ $st -eq 0 ] || deps_die "installing Debian packages failed (exit $st; not root and no sudo?): run $(deps_install_cmd deb "${debs[@]}")"
    else
        echo "deps: Debian packages present"
    fi
    if [ $((${#toolchains[@]} + ${#targets[@]} + ${#components[@]})) -gt 0 ] && ! command -v rustup >/dev/null 2>&1; then
        deps_die "rustup not found: install Rust through rustup (see https://rustup.rs), then run this again"
    fi
    for name in "${toolchains[@]}"; do
        rustup toolchain install --profile minimal "$name"
    done
    for name in "${targets[@]}"; do
        read -r n tc <<<"$(deps_split_at "$name")"
        rustup target add ${tc:+--toolchain "$tc"} "$n"
    done
    for name in "${components[@]}"; do
        read -r n tc <<<"$(deps_split_at "$name")"
        rustup component add ${tc:+--toolchain "$tc"} "$n"
    done
    for name in "${crates[@]}"; do
        case $name in
            *@*) cargo install --locked "${name%@*}" --version "${name#*@}" ;;
            *) cargo install --locked "$name" ;;
        esac
    done
    if [ ${#pips[@]} -gt 0 ]; then
        echo "deps: installing Python packages into $(deps_venv): ${pips[*]}"
        [ -x "$(deps_venv)/bin/python3" ] || python3 -m venv "$(deps_venv)"
        "$(deps_venv)/bin/pip" install -q "${pips[@]}"
    fi
    local left
    left=$(deps_missing "$@" | tr '\n' ' ')
    [ -z "$left" ] || deps_die "still missing after installing: $left"
    deps_smoke
}

# Each C toolchain the builds use compiles a file that includes the C library
# headers ring includes. A compiler without its headers (the Recommends that
# --no-install-recommends drops) fails here, in a second, with the package
# named, instead of deep inside ring's build script minutes later.
deps_smoke() {
    local tmp cc pkgs err
    tmp=$(mktemp -d)
    printf '#include <stdint.h>\n#include <string.h>\n#include <stdlib.h>\nint main(void) { uint8_t b[4]; memset(b, 0, sizeof b); return b[0]; }\n' >"$tmp/t.c"
    while IFS='|' read -r cc pkgs; do
        if ! err=$($cc -o "$tmp/t" "$tmp/t.c" 2>&1); then
            rm -rf "$tmp"
            err=$(grep -m 1 -E 'error|not found' <<<"$err" || head -n 1 <<<"$err")
            deps_die "C toolchain check failed: '$cc' cannot build a file including <stdint.h> ($err); install: $(deps_install_cmd deb "$pkgs")"
        fi
    done <<'EOF'
cc|gcc libc6-dev
musl-gcc -static|musl-tools musl-dev
aarch64-linux-gnu-gcc -c|gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross
EOF
    rm -rf "$tmp"
    echo "deps: C toolchains build (cc, musl-gcc, aarch64-linux-gnu-gcc)"
}

# Every direct Recommends of a listed Debian package is listed (any group)
# or declined with a skip line. Alternatives (a | b) count as one: listing
# either is enough.
deps_audit() {
    local -A known=()
    local line kind name groups rest
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        read -r groups kind name rest <<<"$line" || true
        case ${kind:-} in deb | skip) known[${name%%/*}]=1 ;; esac
    done <"$DEPS_LIST"
    local -a debs=()
    while read -r kind name; do
        [ "$kind" = deb ] && debs+=("${name%%/*}")
    done < <(deps_print)
    local bad=0 pkg="" alt="" ok=0 pending=0
    # apt-cache prints "pkg", then "  Recommends: x", or " |Recommends: y"
    # when an alternative follows on the next line; a virtual package <v> is
    # followed by its providers, indented by four spaces.
    deps_audit_close() {
        if [ $pending -eq 1 ] && [ $ok -eq 0 ]; then
            echo "deps: $pkg Recommends$alt: list it in scripts/deps.list (deb) or decline it (skip) with a reason" >&2
            bad=1
        fi
        pending=0 alt="" ok=0
    }
    while IFS= read -r line; do
        case $line in
            "    "*)
                name=${line#    }
                [ -z "${known[$name]:-}" ] || ok=1
                continue
                ;;
        esac
        [ $pending -eq 0 ] || deps_audit_close
        case $line in
            " |Recommends: "* | "  Recommends: "*)
                name=${line#*Recommends: }
                name=${name#<}
                name=${name%>}
                alt+="${alt:+ |} $name"
                [ -z "${known[$name]:-}" ] || ok=1
                [[ $line != "  Recommends: "* ]] || pending=1
                ;;
            [a-z0-9]*) pkg=$line ;;
        esac
    done < <(apt-cache depends --no-pre-depends --no-depends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${debs[@]}")
    deps_audit_close
    [ $bad -eq 0 ] || exit 1
    echo "deps: every Recommends of the ${#debs[@]} listed Debian packages is listed or declined"
}

# Every program the Rust tests spawn by name (`Command::new("x")`, and the
# program `timeout N x` runs) belongs to a listed Debian package or to a
# Depends of one, looked up in dpkg's file lists (not PATH, so a pyenv shim
# or a hand-installed copy does not count). Catches a new tool a test starts
# using that only happens to be installed on the author's machine.
deps_tools() {
    local -A ok=()
    local kind name line f tool pkg bad=0 n=0
    local -a debs=()
    local list
    list=$(mktemp)
    while read -r kind name; do
        [ "$kind" = deb ] || continue
        debs+=("${name%%/*}")
        ok[${name%%/*}]=1
    done < <(deps_print test)
    while IFS= read -r line; do
        case $line in "  Depends: "* | "  PreDepends: "*)
            name=${line#*Depends: }
            ok[${name#<}]=1
            ;;
        esac
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${debs[@]}")
    for f in "$DEPS_ROOT"/tests/*.rs "$DEPS_ROOT"/tests/*/*.rs; do
        [ -f "$f" ] || continue
        tr '\n' ' ' <"$f" | grep -oE 'Command::new\("[^"]+"\)(\s*\.args\(\["[0-9]+",\s*"[^"]+")?' || true
    done | sed -E 's/.*"([^"]+)"$/\1/; s/Command::new\("([^"]+)"\)/\1/' | sort -u >"$list"
    while read -r tool; do
        n=$((n + 1))
        pkg=""
        for f in /usr/bin /bin /usr/sbin /sbin; do
            pkg=$(dpkg -S "$f/$tool" 2>/dev/null | grep -v '^diversion' | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        if [ -z "$pkg" ]; then
            echo "deps: the tests spawn '$tool', which no installed Debian package provides: list its package in scripts/deps.list" >&2
            bad=1
        elif [ -z "${ok[$pkg]:-}" ]; then
            echo "deps: the tests spawn '$tool' (Debian package $pkg), which scripts/deps.list does not list for the group test" >&2
            bad=1
        fi
    done <"$list"
    rm -f "$list"
    [ $bad -eq 0 ] || exit 1
    echo "deps: the $n programs the tests spawn by name come from listed packages"
}

# The README's copy of `scripts/test --print-deps` (between the markers
# `<!-- deps: scripts/test --print-deps -->` and `<!-- /deps -->`) is the
# script's list exactly.
deps_readme() {
    local readme=$DEPS_ROOT/README.md want got
    want=$(deps_print test release)
    got=$(sed -n '/^<!-- deps: scripts\/test --print-deps -->$/,/^<!-- \/deps -->$/p' "$readme" |
        grep -v -e '^<!--' -e '^```' -e '^\$ ' || true)
    if [ "$want" != "$got" ]; then
        echo "deps: README.md's list of what scripts/test installs differs from scripts/test --print-deps:" >&2
        diff <(echo "$got") <(echo "$want") | sed 's/^/    /' >&2 || true
        exit 1
    fi
    echo "deps: README.md lists what scripts/test installs"
}
