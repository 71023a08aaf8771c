#!/usr/bin/env bash
# lxcq host set-up for Debian 12/13 and Ubuntu 22.04/24.04. Run as root:
#
#   sudo bash scripts/setup-host.sh
#
# Idempotent: run it as often as you like (scripts/run.sh and scripts/test.sh run it every time);
# a second run only checks and reports. What it does, in order:
#   1. apt packages lxcq needs (apt-get update first, only when something is missing)
#   2. CRIU 4 for checkpoint/restore/live migration (apt where the distro has a working criu >= 4,
#      else Debian 13's criu unpacked into a private prefix, else Debian sid's when 13's cannot dump
#      a socket on this kernel; a failure here only warns)
#   3. an isolated bridge lxcbr0 (10.0.3.1/24, no NAT, no DHCP) when the host has none
#  3b. a subordinate uid/gid range for root in /etc/subuid and /etc/subgid (unprivileged containers)
#   4. Node.js >= 20.19 and pnpm 10
#   5. `pnpm install --frozen-lockfile` in this repository, then the web dashboard's bundle (the API serves it)
#
# Knobs (environment):
#   LXCQ_SETUP_APT=0           skip step 1            LXCQ_SETUP_CRIU=0    skip step 2
#   LXCQ_SETUP_BRIDGE=0        skip step 3            LXCQ_SETUP_NODE=0    skip step 4
#   LXCQ_SETUP_PNPM_INSTALL=0  skip step 5          LXCQ_SETUP_IDMAP=0   skip step 3b
#   LXCQ_SETUP_TEST_PACKAGES=0 leave out the packages only the tests need (zsh, chromium)
#   LXCQ_APT_UPDATE=1          always run apt-get update
#   LXCQ_CRIU_PREFIX           private CRIU prefix (default /opt/lxcq/criu)
#   LXCQ_CRIU_REINSTALL=1      fetch the private CRIU again even if one is installed
#   LXCQ_CRIU_MIRROR           Debian mirror for the private CRIU (default http://deb.debian.org/debian)
#   LXCQ_CRIU_SUITE            Debian suite for the private CRIU (default trixie)
#   LXCQ_CRIU_FALLBACK_SUITE   newer suite tried when that CRIU cannot dump a socket (default sid)
#   LXCQ_BRIDGE                bridge name (default lxcbr0, the name in LXC's default config)
set -Eeuo pipefail
shopt -s nullglob

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRIU_PREFIX="${LXCQ_CRIU_PREFIX:-/opt/lxcq/criu}"
CRIU_MIRROR="${LXCQ_CRIU_MIRROR:-http://deb.debian.org/debian}"
CRIU_SUITE="${LXCQ_CRIU_SUITE:-trixie}"
CRIU_FALLBACK_SUITE="${LXCQ_CRIU_FALLBACK_SUITE:-sid}"
CRIU_PROBE="$REPO_ROOT/packages/lxc-ffi/criu-probe.pl"
CRIU_VERDICT=/var/lib/lxcq/criu-probe
CRIU_WRAPPER=/usr/local/sbin/criu
CRIU_MARK='# lxcq criu wrapper'
BRIDGE="${LXCQ_BRIDGE:-lxcbr0}"
BRIDGE_ADDR=10.0.3.1/24
BRIDGE_ALIAS='lxcq isolated bridge (no NAT, no DHCP)'
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# ---------------------------------------------------------------------------------------------
# output helpers
if [[ -t 1 ]]; then
  C_B=$'\e[1m' C_G=$'\e[32m' C_Y=$'\e[33m' C_R=$'\e[31m' C_0=$'\e[0m'
else
  C_B='' C_G='' C_Y='' C_R='' C_0=''
fi
SUMMARY=()
step() { printf '\n%s==> %s%s\n' "$C_B" "$*" "$C_0"; }
say() { printf '    %s\n' "$*"; }
ok() { printf '    %sok%s  %s\n' "$C_G" "$C_0" "$*"; }
warn() { printf '    %sWARNING%s  %s\n' "$C_Y" "$C_0" "$*" >&2; }
die() {
  printf '\n%sERROR%s  %s\n' "$C_R" "$C_0" "$*" >&2
  exit 1
}
note() { SUMMARY+=("$(printf '%-10s %s' "$1" "$2")"); }
trap 'die "setup-host.sh failed at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------------------------
# 0. preconditions
[[ $EUID -eq 0 ]] || die "run as root (sudo bash scripts/setup-host.sh): it installs packages and creates a bridge."
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12/13 and Ubuntu 22.04/24.04."
OS_ID=unknown OS_VERSION=unknown OS_NAME=unknown
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  OS_ID="${ID:-unknown}" OS_VERSION="${VERSION_ID:-unknown}" OS_NAME="${PRETTY_NAME:-unknown}"
fi
ARCH="$(dpkg --print-architecture)"
case "$ARCH" in
  amd64) CRIU_TRIPLET=x86_64-linux-gnu ;;
  arm64) CRIU_TRIPLET=aarch64-linux-gnu ;;
  *) CRIU_TRIPLET='' ;;
esac
T_START=$SECONDS
printf '%slxcq host set-up%s on %s (%s %s, %s, kernel %s), repo %s\n' "$C_B" "$C_0" "$OS_NAME" "$OS_ID" "$OS_VERSION" "$ARCH" "$(uname -r)" "$REPO_ROOT"
case "$OS_ID" in
  debian | ubuntu) ;;
  *) warn "untested distribution '$OS_ID' (supported: Debian 12/13, Ubuntu 22.04/24.04); going on." ;;
esac

# ---------------------------------------------------------------------------------------------
# 1. apt packages
# Each entry: "alternatives|separated|by|bars  why". The first alternative the archive has is installed.
PACKAGES=(
  "lxc                    LXC tools and lxc-net (lxc-ls, lxc-attach, ... see the same containers as lxcq)"
  "liblxc1|liblxc1t64     liblxc.so.1, the library the worker calls through koffi"
  "lxc-dev|liblxc-dev     lxccontainer.h, the C header the koffi binding follows"
  "lxc-templates          container templates (busybox, download, local, oci)"
  "busybox-static         what the busybox template copies into a container (used by the tests)"
  "redis-server           the redis-server binary: tests and scripts/run.sh start their own Redis"
  "iptables               criu runs ip6tables-restore/iptables-restore during dump and restore"
  "uidmap                 newuidmap/newgidmap for containers with lxc.idmap (unprivileged containers)"
  "rsync                  liblxc copies directory-backed rootfs with rsync (clone, snapshot)"
  "btrfs-progs            mkfs.btrfs/btrfs for btrfs storage pools (subvolumes, snapshots, qgroup quotas)"
  "xz-utils               the local/download templates unpack .tar.xz images"
  "iproute2               ip(8): the bridge set-up below and LXC's veth networking"
  "ca-certificates        TLS roots for npm (pnpm install)"
  "curl                   the curl examples printed by scripts/run.sh"
  "wget                   the download template fetches images with wget"
  "gnupg                  the download template verifies image signatures with gpg"
)
# Needed by the tests only (LXCQ_SETUP_TEST_PACKAGES=0 leaves them out, as the Docker image does).
# Where the archive has none of an entry's names, the set-up warns and goes on.
TEST_PACKAGES=(
  "zsh                    the tests check the lxcq CLI's zsh completion script with zsh -n"
  "chromium               headless browser for the dashboard's end-to-end test (playwright-core drives /usr/bin/chromium)"
  "acl                    setfacl/getfacl: the tests check a migration keeps POSIX ACLs"
  "attr                   setfattr/getfattr: the tests check a migration keeps extended attributes"
  "libcap2-bin            setcap/getcap: the tests check a migration keeps file capabilities"
  "systemd                systemd-analyze: the tests verify the units scripts/install.sh installs"
)
if [[ "${LXCQ_SETUP_TEST_PACKAGES:-1}" != 0 ]]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi
is_test_package() {
  local e
  for e in "${TEST_PACKAGES[@]}"; do [[ "${e%% *}" == "$1" ]] && return 0; done
  return 1
}
pkg_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }
pkg_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
APT_UPDATED=0
apt_update() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    say "apt-get update"
    apt-get -q -o DPkg::Lock::Timeout=600 update >/tmp/lxcq-apt-update.log 2>&1 ||
      { cat /tmp/lxcq-apt-update.log >&2; die "apt-get update failed (log above)."; }
    APT_UPDATED=1
  fi
}

if [[ "${LXCQ_SETUP_APT:-1}" != 0 ]]; then
  step "1/5 apt packages"
  [[ "${LXCQ_APT_UPDATE:-0}" == 1 ]] && apt_update
  MISSING=()
  REDIS_WAS_INSTALLED=0
  pkg_installed redis-server && REDIS_WAS_INSTALLED=1
  for entry in "${PACKAGES[@]}"; do
    alts="${entry%% *}" why="${entry#* }"
    why="${why#"${why%%[![:space:]]*}"}"
    IFS='|' read -r -a names <<<"$alts"
    have=''
    for n in "${names[@]}"; do pkg_installed "$n" && have="$n" && break; done
    if [[ -n $have ]]; then
      say "$(printf '%-16s present   %s' "$have" "$why")"
    else
      MISSING+=("$alts")
      say "$(printf '%-16s MISSING   %s' "${names[0]}" "$why")"
    fi
  done
  if [[ ${#MISSING[@]} -gt 0 ]]; then
    apt_update
    TO_INSTALL=()
    for alts in "${MISSING[@]}"; do
      IFS='|' read -r -a names <<<"$alts"
      pick=''
      for n in "${names[@]}"; do
        c="$(pkg_candidate "$n")"
        if [[ -n $c && $c != "(none)" ]]; then pick="$n" && break; fi
      done
      if [[ -z $pick ]] && is_test_package "$alts"; then
        warn "no package ${names[*]} in this distribution's archive (a test needs it; Ubuntu ships Chromium as a snap only): install it by hand for the full test suite (for Chromium, point LXCQ_CHROMIUM at the binary)."
        continue
      fi
      [[ -n $pick ]] || die "no installable package among: ${names[*]} (is the distribution's main/universe archive in the apt sources?)"
      TO_INSTALL+=("$pick")
    done
    if [[ ${#TO_INSTALL[@]} -gt 0 ]]; then
      say "installing: ${TO_INSTALL[*]}"
      apt-get "${APT_OPTS[@]}" install --no-install-recommends "${TO_INSTALL[@]}" >/tmp/lxcq-apt-install.log 2>&1 ||
        { tail -n 40 /tmp/lxcq-apt-install.log >&2; die "apt-get install failed (last lines above; full log /tmp/lxcq-apt-install.log)."; }
      ok "installed ${TO_INSTALL[*]}"
      note apt "installed ${TO_INSTALL[*]}"
    fi
  else
    ok "all packages present"
    note apt "all packages present"
  fi
  # lxcq never uses the distribution's Redis service: tests and run.sh start their own redis-server.
  # When this run installed redis-server, do not leave the distro's service running on :6379.
  if [[ $REDIS_WAS_INSTALLED -eq 0 ]] && pkg_installed redis-server; then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
      systemctl disable --now redis-server >/dev/null 2>&1 || true
    else
      invoke-rc.d redis-server stop >/dev/null 2>&1 || true
      update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
    say "stopped and disabled the distribution's redis-server service (lxcq starts its own Redis)"
  fi
  say "liblxc $(lxc-start --version 2>/dev/null || echo '?'), $(redis-server --version 2>/dev/null | awk '{print $1, $2, $3}')"
else
  step "1/5 apt packages: skipped (LXCQ_SETUP_APT=0)"
fi

# ---------------------------------------------------------------------------------------------
# 2. CRIU >= 4 (checkpoint, restore, live migration)
# liblxc runs the first `criu` on PATH (src/lxc/criu.c: on_path("criu", NULL)). lxcq puts a small
# wrapper at /usr/local/sbin/criu (before /usr/sbin in root's PATH) in front of the real criu, be it
# the distribution's or Debian 13's unpacked into $CRIU_PREFIX. The wrapper adds
# --mntns-compat-mode to `criu restore` only: criu 4's mount-v2 engine fails to restore the
# templates' /lib bind mounts ("mnt-v2: Failed to move_mount"), and the option cannot go into
# /etc/criu/default.conf because criu then refuses every other action ("Option
# --mntns-compat-mode is only valid on restore"), `criu check` and dump included.
CRIU_STATUS="not installed"
criu_version_of() { "$@" --version 2>/dev/null | awk '/^Version:/ {print $2; exit}'; }
criu_check() { # prints criu check's output; returns 0 when it says "Looks good."
  local out rc=0
  out="$(criu check 2>&1)" || rc=$?
  printf '%s\n' "$out" | { grep -v 'kdat cache' || true; } | sed 's/^/      criu check: /'
  [[ $rc -eq 0 ]] && grep -q 'Looks good' <<<"$out"
}
criu_is_ours() { [[ -f $CRIU_WRAPPER ]] && grep -qF "$CRIU_MARK" "$CRIU_WRAPPER"; }
criu_real() { sed -n 's/^# real: //p' "$CRIU_WRAPPER" 2>/dev/null; }
criu_where() {
  printf '%s' "$(command -v criu || echo '?')"
  if criu_is_ours; then printf ' -> %s' "$(criu_real)"; fi
}
criu_private_loader() { # the prefix's dynamic loader, relative to the prefix
  local f
  for f in "$CRIU_PREFIX/usr/lib/$CRIU_TRIPLET"/ld-linux*.so.*; do
    printf '%s' "${f#"$CRIU_PREFIX/"}"
    return 0
  done
  return 1
}
criu_write_wrapper() { # $1 = private | absolute path of the system's criu; $2 = suite when private
  local exec_line real
  if [[ $1 == private ]]; then
    local loader
    loader="$(criu_private_loader)" || return 1
    # The prefix's own loader: Debian 13's criu needs glibc 2.38+. --library-path (not
    # LD_LIBRARY_PATH) keeps the programs criu runs (ip6tables-restore, ...) on the host's libraries.
    exec_line="exec \"$CRIU_PREFIX/$loader\" --library-path \"$CRIU_PREFIX/usr/lib/$CRIU_TRIPLET\" \"$CRIU_PREFIX/usr/sbin/criu\" \"\$@\""
    real="$CRIU_PREFIX/usr/sbin/criu (Debian ${2:-$CRIU_SUITE}'s, private prefix)"
  else
    exec_line="exec \"$1\" \"\$@\""
    real="$1"
  fi
  mkdir -p "$(dirname "$CRIU_WRAPPER")" || return 1
  # shellcheck disable=SC2016 # the wrapper's own $1 and $@
  {
    echo '#!/bin/sh'
    echo "$CRIU_MARK, written by lxcq's scripts/setup-host.sh (rewritten on every run)."
    echo "# real: $real"
    echo "# criu 4's mount-v2 cannot restore LXC's bind mounts here, and mntns-compat-mode in"
    echo "# /etc/criu/default.conf would break dump and check: add it to restore only."
    echo 'if [ "$1" = restore ]; then'
    echo '  shift'
    echo '  set -- restore --mntns-compat-mode "$@"'
    echo 'fi'
    echo "$exec_line"
  } >"$CRIU_WRAPPER.tmp" || return 1
  chmod 0755 "$CRIU_WRAPPER.tmp" && mv "$CRIU_WRAPPER.tmp" "$CRIU_WRAPPER" || return 1
  if [[ $1 == private ]]; then
    # also at /usr/sbin/criu when that path is free, for programs started with a short PATH
    if [[ ! -e /usr/sbin/criu || (-L /usr/sbin/criu && "$(readlink /usr/sbin/criu)" == "$CRIU_WRAPPER") ]]; then
      ln -sfn "$CRIU_WRAPPER" /usr/sbin/criu
    else
      say "note: /usr/sbin/criu is another criu; $CRIU_WRAPPER comes before it on root's PATH"
    fi
  elif [[ -L /usr/sbin/criu && "$(readlink /usr/sbin/criu)" == "$CRIU_WRAPPER" ]]; then
    rm -f /usr/sbin/criu
  fi
  hash -r
}
criu_system_path() { # a criu on PATH that is neither our wrapper nor a link to it
  local d
  local IFS=:
  for d in $PATH; do
    if [[ -x $d/criu && ! -L $d/criu ]] && ! grep -qsF "$CRIU_MARK" "$d/criu"; then
      printf '%s' "$d/criu"
      return 0
    fi
  done
  return 1
}
criu_cleanup_config() {
  # a first version of this script wrote mntns-compat-mode to /etc/criu/default.conf: take it out
  if grep -qs '^# lxcq: criu 4 mount-v2' /etc/criu/default.conf; then
    sed -i '/^# lxcq: criu 4 mount-v2/,/^mntns-compat-mode$/d' /etc/criu/default.conf
    [[ -s /etc/criu/default.conf ]] || rm -f /etc/criu/default.conf
    say "removed lxcq's old mntns-compat-mode line from /etc/criu/default.conf"
  fi
  if grep -qsE '^[[:space:]]*mntns-compat-mode' /etc/criu/*.conf; then
    warn "mntns-compat-mode in /etc/criu/*.conf makes criu refuse dump and check; remove it (lxcq's wrapper adds it to restore)"
  fi
}
# What `criu check` misses: since Linux 6.16 getsockopt(SO_PASSCRED/SO_PASSSEC) fails on sockets
# other than unix and netlink, and criu 4.1.1 reads both on every socket, so it cannot dump any
# container with a network socket while `criu check` says "Looks good." (criu fixed it after 4.1.1).
# The probe proves a dump: a process (criu-probe.pl) holding a unix and a TCP socket on loopback,
# dumped into a temp dir, then killed by its pid. The worker runs the same probe (criuStatus).
CRIU_PROBE_WHY=''
CRIU_REJECTED=''
criu_probe() {
  local dir pid rc=0 i
  CRIU_PROBE_WHY=''
  command -v perl >/dev/null || {
    CRIU_PROBE_WHY="no perl to run the socket probe"
    return 1
  }
  dir="$(mktemp -d /tmp/lxcq-criu-probe.XXXXXX)" || return 1
  mkdir "$dir/img"
  perl "$CRIU_PROBE" "$dir" </dev/null >/dev/null 2>"$dir/probe.err" &
  pid=$!
  # the dump ends it with SIGKILL: disowned, bash prints no "Killed" notice about it
  disown "$pid"
  for i in $(seq 50); do
    [[ -e $dir/ready ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -e $dir/ready ]]; then
    CRIU_PROBE_WHY="the probe process did not start: $(head -c 300 "$dir/probe.err")"
    kill "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return 1
  fi
  # a criu that fails a socket dump can hang afterwards (4.1.1 did here): bounded
  timeout 15 criu dump -t "$pid" -D "$dir/img" -o dump.log >/dev/null 2>&1 || rc=$?
  kill "$pid" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    CRIU_PROBE_WHY="$(grep -E 'Error|Can.t' "$dir/img/dump.log" 2>/dev/null | grep -v RLIMIT_NOFILE | head -n 2 | sed 's/^([0-9. ]*) //; s/^Error ([^)]*): //' | paste -sd ';' -)"
    [[ -n $CRIU_PROBE_WHY ]] || CRIU_PROBE_WHY="criu dump exited with status $rc"
    [[ $rc -eq 124 ]] && CRIU_PROBE_WHY="$CRIU_PROBE_WHY (and criu hung afterwards)"
  fi
  rm -rf "$dir"
  return "$rc"
}
criu_record() { # $1 = ok | fail, $2 = words: the worker reports the set-up's verdict beside its own
  mkdir -p "$(dirname "$CRIU_VERDICT")" &&
    printf '%s %s criu %s: %s\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(criu_version_of criu || echo '?')" "$2" >"$CRIU_VERDICT"
}
# returns 0: working criu >= 4 (check and socket dump); 2: criu >= 4 installed but it fails `criu
# check` or the socket dump here; 1: none
criu_try() {
  local cur
  hash -r
  cur="$(criu_version_of criu || true)"
  [[ -n $cur ]] && dpkg --compare-versions "$cur" ge 4 || return 1
  if ! criu_check; then
    CRIU_STATUS="criu $cur installed ($(criu_where)) but 'criu check' fails on this host"
    criu_record fail "$CRIU_STATUS"
    return 2
  fi
  if criu_probe; then
    CRIU_STATUS="criu $cur, 'criu check': Looks good, and it dumped a process holding a unix and a TCP socket ($(criu_where))"
    say "socket probe: criu $cur dumped a unix and a TCP socket"
    criu_record ok "$CRIU_STATUS"
    return 0
  fi
  say "socket probe: criu $cur passes 'criu check' but cannot dump a socket on kernel $(uname -r): $CRIU_PROBE_WHY"
  CRIU_STATUS="criu $cur installed ($(criu_where)) but cannot dump a socket on this kernel: $CRIU_PROBE_WHY"
  CRIU_REJECTED="${CRIU_REJECTED:+$CRIU_REJECTED; }criu $cur ($(criu_real || true)) passed 'criu check' but could not dump a socket: $CRIU_PROBE_WHY"
  criu_record fail "$CRIU_STATUS"
  return 2
}

criu_from_apt() {
  local cand
  apt_update
  cand="$(pkg_candidate criu)"
  if [[ -z $cand || $cand == "(none)" ]]; then
    say "the distribution has no criu package"
    return 1
  fi
  if ! dpkg --compare-versions "$cand" ge 4; then
    say "the distribution's criu is $cand (< 4; Debian 12's 3.17 fails 'criu check' on current kernels): not using it"
    return 1
  fi
  say "installing criu $cand from apt"
  apt-get "${APT_OPTS[@]}" install --no-install-recommends criu >/tmp/lxcq-apt-criu.log 2>&1 ||
    { tail -n 20 /tmp/lxcq-apt-criu.log >&2; return 1; }
  [[ -x /usr/sbin/criu && ! -L /usr/sbin/criu ]] || return 1
  criu_write_wrapper /usr/sbin/criu
}

criu_private() { # $1 = suite: Debian's criu and its libraries, unpacked into $CRIU_PREFIX
  local suite=$1
  [[ -n $CRIU_TRIPLET ]] || {
    say "no private CRIU for architecture $ARCH"
    return 1
  }
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [[ ! -r $keyring ]]; then
    say "installing debian-archive-keyring (to verify Debian $suite's packages)"
    apt_update
    apt-get "${APT_OPTS[@]}" install --no-install-recommends debian-archive-keyring >/dev/null 2>&1 || {
      say "could not install debian-archive-keyring"
      return 1
    }
  fi
  local work
  work="$(mktemp -d /tmp/lxcq-criu.XXXXXX)" || return 1
  # A separate apt configuration: own sources list, lists dir, cache and an empty dpkg status, so the
  # system's apt state (sources, lists, pins, installed packages) is neither read nor changed.
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root" || return 1
  echo "deb [signed-by=$keyring] $CRIU_MIRROR $suite main" >"$work/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null
    -o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH"
    -o APT::Sandbox::User=root -o Debug::NoLocking=1
  )
  say "fetching Debian $suite's package index into $work (separate apt state)"
  if ! apt-get "${opts[@]}" -q update >"$work/update.log" 2>&1; then
    tail -n 8 "$work/update.log" | sed 's/^/      /' >&2
    rm -rf "$work"
    return 1
  fi
  # criu plus the closure of its Depends/Pre-Depends (libc6 2.41, libcompel1, gnutls, nftables, ...)
  local pkgs
  pkgs="$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances criu 2>/dev/null | { grep -v '^[[:space:]<]' || true; } | sort -u | tr '\n' ' ')"
  if [[ " $pkgs " != *" criu "* || " $pkgs " != *" libc6 "* ]]; then
    say "Debian $suite has no criu for $ARCH"
    rm -rf "$work"
    return 1
  fi
  say "downloading: $pkgs"
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  if ! (cd "$work/debs" && apt-get "${opts[@]}" -q download $pkgs >"$work/download.log" 2>&1); then
    tail -n 8 "$work/download.log" | sed 's/^/      /' >&2
    rm -rf "$work"
    return 1
  fi
  local deb
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root" || return 1; done
  # swap the new prefix in, then check that every library resolves inside it and criu runs
  mkdir -p "$(dirname "$CRIU_PREFIX")" || return 1
  rm -rf "$CRIU_PREFIX.old"
  if [[ -e $CRIU_PREFIX ]]; then mv "$CRIU_PREFIX" "$CRIU_PREFIX.old" || return 1; fi
  mv "$work/root" "$CRIU_PREFIX" || return 1
  rm -rf "$work" "$CRIU_PREFIX.old"
  local loader libs version
  loader="$(criu_private_loader)" || {
    say "no dynamic loader in the unpacked libc6"
    return 1
  }
  libs="$("$CRIU_PREFIX/$loader" --library-path "$CRIU_PREFIX/usr/lib/$CRIU_TRIPLET" --list "$CRIU_PREFIX/usr/sbin/criu" 2>&1)" || true
  if grep -q 'not found' <<<"$libs" || grep '=>' <<<"$libs" | grep -v "=> $CRIU_PREFIX/" | grep -q .; then
    say "criu's libraries do not all resolve inside $CRIU_PREFIX:"
    printf '      %s\n' "$libs" >&2
    return 1
  fi
  version="$(criu_version_of "$CRIU_PREFIX/$loader" --library-path "$CRIU_PREFIX/usr/lib/$CRIU_TRIPLET" "$CRIU_PREFIX/usr/sbin/criu")"
  [[ -n $version ]] || {
    say "the unpacked criu does not run"
    return 1
  }
  criu_write_wrapper private "$suite" || return 1
  say "installed criu $version in $CRIU_PREFIX ($(du -sh "$CRIU_PREFIX" | cut -f1)), wrapper $CRIU_WRAPPER"
}

criu_suites() { # the suites to fetch a private criu from, in order, after $1 (none: all)
  local s seen=0
  [[ -n $1 ]] || seen=1
  for s in "$CRIU_SUITE" "$CRIU_FALLBACK_SUITE"; do
    if [[ $s == "$1" ]]; then
      seen=1
    elif [[ $seen -eq 1 && -n $s ]]; then
      printf '%s\n' "$s"
    fi
  done | awk '!x[$0]++'
}
criu_private_suite() { # the suite of the installed private criu, from the wrapper's "# real:" line
  criu_real | sed -n "s/.*(Debian \(.*\)'s, private prefix)$/\1/p"
}

setup_criu() {
  local rc real sys cur='' after='' suite
  criu_cleanup_config
  real=''
  if criu_is_ours; then real="$(criu_real)"; fi
  if [[ "${LXCQ_CRIU_REINSTALL:-0}" != 1 && -n $real ]]; then
    # Installed by an earlier run: rewrite the wrapper (cheap) and check. A private criu that fails
    # is not fetched again on every run: only a later suite is tried (LXCQ_CRIU_REINSTALL=1 fetches
    # them all again).
    if [[ $real == "$CRIU_PREFIX/"* ]] && criu_private_loader >/dev/null && [[ -x $CRIU_PREFIX/usr/sbin/criu ]]; then
      after="$(criu_private_suite)"
      after="${after:-$CRIU_SUITE}"
      say "private criu from Debian $after in $CRIU_PREFIX already installed"
      criu_write_wrapper private "$after" || return 1
      rc=0
      criu_try || rc=$?
      [[ $rc -eq 0 ]] && return 0
      [[ -n "$(criu_suites "$after")" ]] || return "$rc"
    elif [[ -x $real ]]; then
      criu_write_wrapper "$real" || return 1
      rc=0
      criu_try || rc=$?
      [[ $rc -eq 0 ]] && return 0
    fi
  fi
  if [[ -z $after ]]; then
    # a criu >= 4 already on the machine (the distribution's or the admin's)
    if sys="$(criu_system_path)"; then
      cur="$(criu_version_of "$sys" || true)"
      if [[ -n $cur ]] && dpkg --compare-versions "$cur" ge 4; then
        say "using the installed criu $cur ($sys)"
        criu_write_wrapper "$sys" || return 1
        rc=0
        criu_try || rc=$?
        [[ $rc -eq 0 ]] && return 0
        say "it does not pass 'criu check' and the socket probe"
      elif [[ -n $cur ]]; then
        say "the installed criu $cur ($sys) is too old for lxcq (needs >= 4)"
      fi
    fi
    # the distribution's package, when it is criu >= 4 and nothing was installed already
    if [[ -z $cur ]] && criu_from_apt; then
      rc=0
      criu_try || rc=$?
      [[ $rc -eq 0 ]] && return 0
      say "the distribution's criu does not pass 'criu check' and the socket probe"
    fi
  fi
  rc=1
  for suite in $(criu_suites "$after"); do
    say "getting criu from Debian $suite into $CRIU_PREFIX (no system package is installed or changed)"
    criu_private "$suite" || continue
    rc=0
    criu_try || rc=$?
    if [[ $rc -eq 0 ]]; then
      CRIU_STATUS="$CRIU_STATUS; chose Debian $suite's${CRIU_REJECTED:+ because $CRIU_REJECTED}"
      criu_record ok "$CRIU_STATUS"
      return 0
    fi
  done
  return "$rc"
}

if [[ "${LXCQ_SETUP_CRIU:-1}" != 0 ]]; then
  step "2/5 CRIU >= 4 (checkpoint, restore, live migration)"
  rc=0
  setup_criu || rc=$?
  case $rc in
    0) ok "$CRIU_STATUS" ;;
    2) warn "$CRIU_STATUS: lxcq will refuse checkpoint/restore/live migration on this host with a clear error code; everything else works." ;;
    *)
      CRIU_STATUS="no working criu >= 4"
      criu_record fail "$CRIU_STATUS" || true
      warn "could not install CRIU >= 4: lxcq will refuse checkpoint/restore/live migration on this host with a clear error code; everything else works."
      ;;
  esac
  note criu "$CRIU_STATUS"
else
  step "2/5 CRIU: skipped (LXCQ_SETUP_CRIU=0)"
fi

# ---------------------------------------------------------------------------------------------
# 3. bridge
# LXC's default config (/etc/lxc/default.conf) attaches containers to lxcbr0. lxc-net creates it
# with NAT and DHCP where it runs; where nothing created it, container start fails. Here: an
# isolated bridge, so containers can reach each other and the host, never beyond the machine.
setup_bridge() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    local alias_now
    alias_now="$(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null || true)"
    if [[ $alias_now != "$BRIDGE_ALIAS" ]]; then
      ok "$BRIDGE exists and was not made by lxcq (lxc-net or your own); left as it is"
      note bridge "$BRIDGE exists (not lxcq's), left as is"
      return 0
    fi
    say "$BRIDGE exists (lxcq's isolated bridge)"
  else
    ip link add "$BRIDGE" type bridge || return 1
    ip link set "$BRIDGE" alias "$BRIDGE_ALIAS" || true
    say "created bridge $BRIDGE"
  fi
  if ! ip -4 addr show dev "$BRIDGE" | grep -q "inet ${BRIDGE_ADDR%/*}/"; then
    ip addr add "$BRIDGE_ADDR" dev "$BRIDGE" || return 1
  fi
  ip link set "$BRIDGE" up || return 1
  # no NAT, no DHCP; and even where IP forwarding is (or later gets) enabled, nothing from the
  # bridge is forwarded off it
  local t
  for t in iptables ip6tables; do
    command -v "$t" >/dev/null || continue
    if ! "$t" -C FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment lxcq-isolated -j DROP 2>/dev/null; then
      "$t" -I FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment lxcq-isolated -j DROP 2>/dev/null ||
        warn "$t: could not add the FORWARD drop rule for $BRIDGE (IP forwarding is $(cat /proc/sys/net/ipv4/ip_forward))"
    fi
  done
  ok "$BRIDGE $BRIDGE_ADDR up, isolated (no NAT, no DHCP, FORWARD from it dropped); see README for outbound networking"
  note bridge "$BRIDGE $BRIDGE_ADDR isolated (lxcq's)"
}
if [[ "${LXCQ_SETUP_BRIDGE:-1}" != 0 ]]; then
  step "3/5 network bridge $BRIDGE"
  setup_bridge || {
    warn "could not set up $BRIDGE: containers with lxc.net.0.link = $BRIDGE will not start (lxc.net.0.type = empty ones will)"
    note bridge "FAILED to set up $BRIDGE"
  }
else
  step "3/5 bridge: skipped (LXCQ_SETUP_BRIDGE=0)"
fi

# ---------------------------------------------------------------------------------------------
# 3b. subordinate ids for unprivileged containers
# lxcq gives every new container lxc.idmap from root's subordinate range: root in the container is
# uid IDMAP_START on the host, an id that owns nothing outside the container's rootfs. The range
# is LXD's default (1000000, a billion ids): room for many 65536-id maps, and no clash with the
# users a distribution makes (useradd picks ranges from 100000 up, 65536 each). The worker reads
# root's line from these files; a host without one refuses to create unprivileged containers.
IDMAP_START=1000000
IDMAP_COUNT=1000000000
setup_idmap() {
  local f line
  for f in /etc/subuid /etc/subgid; do
    [[ -e $f ]] || { install -m 0644 -o root -g root /dev/null "$f" || return 1; }
    line="$(grep -E '^(root|0):' "$f" | head -1 || true)"
    if [[ -n $line ]]; then
      local start="${line#*:}" count
      count="${start#*:}" start="${start%%:*}"
      if [[ $count -ge 65536 ]]; then
        say "$f: root already has $start:$count (left as it is)"
        continue
      fi
      warn "$f: root's range $start:$count is smaller than one container's 65536 ids; adding root:$IDMAP_START:$IDMAP_COUNT after it"
    fi
    if awk -F: -v s="$IDMAP_START" -v c="$IDMAP_COUNT" '$1 != "root" && $1 != "0" && $2 < s + c && s < $2 + $3 { found = 1 } END { exit !found }' "$f"; then
      warn "$f: another entry overlaps $IDMAP_START..$((IDMAP_START + IDMAP_COUNT - 1)); adding root's range anyway (containers' ids would be shared with that user's)"
    fi
    echo "root:$IDMAP_START:$IDMAP_COUNT" >>"$f" || return 1
    say "$f: added root:$IDMAP_START:$IDMAP_COUNT"
  done
  ok "root's subordinate ids: uid $(grep -E '^(root|0):' /etc/subuid | head -1 | cut -d: -f2-), gid $(grep -E '^(root|0):' /etc/subgid | head -1 | cut -d: -f2-)"
  note idmap "root:$(grep -E '^(root|0):' /etc/subuid | head -1 | cut -d: -f2-) in /etc/subuid and /etc/subgid"
}
if [[ "${LXCQ_SETUP_IDMAP:-1}" != 0 ]]; then
  step "3b/5 subordinate ids for unprivileged containers (/etc/subuid, /etc/subgid)"
  setup_idmap || die "could not write root's range to /etc/subuid and /etc/subgid"
else
  step "3b/5 subordinate ids: skipped (LXCQ_SETUP_IDMAP=0)"
fi

# ---------------------------------------------------------------------------------------------
# 4. Node.js >= 20.19 and pnpm 10
node_ok() {
  command -v node >/dev/null &&
    node -e "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>$NODE_MIN_MAJOR||(a===$NODE_MIN_MAJOR&&b>=$NODE_MIN_MINOR)?0:1)" 2>/dev/null
}
pnpm_major() { pnpm --version 2>/dev/null | cut -d. -f1; }
if [[ "${LXCQ_SETUP_NODE:-1}" != 0 ]]; then
  step "4/5 Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR and pnpm 10"
  if node_ok; then
    ok "node $(node --version) ($(command -v node))"
  else
    if command -v node >/dev/null; then
      say "node $(node --version) is too old; trying the distribution's nodejs"
    else
      say "node is missing; installing the distribution's nodejs and npm"
    fi
    apt_update
    apt-get "${APT_OPTS[@]}" install --no-install-recommends nodejs npm >/tmp/lxcq-apt-node.log 2>&1 ||
      { tail -n 20 /tmp/lxcq-apt-node.log >&2; die "apt-get install nodejs npm failed."; }
    hash -r
    node_ok || die "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR is required; the distribution has $(node --version 2>/dev/null || echo none).
       Install a current Node.js (20.19+, 22 or 24: Debian 13's nodejs, NodeSource or nodejs.org) and run this again."
    ok "node $(node --version) from apt"
  fi
  # pnpm: the version pinned in package.json's packageManager (pnpm 10.x)
  want="$(node -e "const p=require('$REPO_ROOT/package.json').packageManager||'';const m=/^pnpm@(10\.[0-9.]+)/.exec(p);console.log(m?m[1]:'10')" 2>/dev/null || echo 10)"
  if [[ "$(pnpm_major)" == 10 ]]; then
    ok "pnpm $(pnpm --version) ($(command -v pnpm))"
  else
    [[ -n "$(pnpm_major)" ]] && say "pnpm $(pnpm --version) is not pnpm 10"
    say "npm install -g pnpm@$want"
    if ! npm install -g --no-fund --no-audit "pnpm@$want" >/tmp/lxcq-npm-pnpm.log 2>&1; then
      tail -n 10 /tmp/lxcq-npm-pnpm.log >&2
      say "npm failed; trying corepack (COREPACK_INTEGRITY_KEYS=0: the registry's metadata carries no signature corepack accepts)"
      { COREPACK_INTEGRITY_KEYS=0 corepack enable pnpm && COREPACK_INTEGRITY_KEYS=0 corepack prepare "pnpm@$want" --activate; } ||
        die "could not install pnpm 10 (npm install -g pnpm@10 and corepack both failed)."
    fi
    hash -r
    [[ "$(pnpm_major)" == 10 ]] || die "pnpm 10 is not on PATH after installing it (PATH=$PATH)."
    ok "pnpm $(pnpm --version) ($(command -v pnpm))"
  fi
  note node "node $(node --version), pnpm $(pnpm --version)"
else
  step "4/5 Node.js/pnpm: skipped (LXCQ_SETUP_NODE=0)"
fi

# ---------------------------------------------------------------------------------------------
# 5. dependencies of this repository
if [[ "${LXCQ_SETUP_PNPM_INSTALL:-1}" != 0 ]]; then
  step "5/5 pnpm install --frozen-lockfile"
  t0=$SECONDS
  (cd "$REPO_ROOT" && pnpm install --frozen-lockfile --config.confirmModulesPurge=false </dev/null 2>&1 | sed 's/^/    /') ||
    die "pnpm install --frozen-lockfile failed (if package.json changed, run 'pnpm install' and commit pnpm-lock.yaml)."
  ok "dependencies installed ($((SECONDS - t0)) s)"
  note deps "pnpm install --frozen-lockfile ok"
  # The API serves packages/dashboard/dist at /ui/; built here so that run.sh and test.sh always
  # serve the dashboard of this checkout (esbuild, well under a second).
  say "building the web dashboard (pnpm --filter @lxcq/dashboard build)"
  (cd "$REPO_ROOT" && pnpm --silent --filter @lxcq/dashboard build </dev/null 2>&1 | sed 's/^/    /') ||
    die "the dashboard build failed (output above); run 'pnpm --filter @lxcq/dashboard build' to see it again."
  ok "dashboard built (packages/dashboard/dist)"
  note dashboard "built packages/dashboard/dist"
else
  step "5/5 pnpm install: skipped (LXCQ_SETUP_PNPM_INSTALL=0)"
fi

# ---------------------------------------------------------------------------------------------
trap - ERR
printf '\n%slxcq host set-up done%s in %d s\n' "$C_B" "$C_0" "$((SECONDS - T_START))"
for line in "${SUMMARY[@]}"; do printf '    %s\n' "$line"; done
