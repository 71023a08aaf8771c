#!/usr/bin/env bash
# lxcq's install command: puts lxcq under systemd on this host (docs/deployment.md).
#
#   sudo bash scripts/setup-host.sh        # once: liblxc, redis-server, CRIU, Node.js, pnpm
#   sudo bash scripts/install.sh           # API + worker + a Redis of its own, enabled and started
#   sudo bash scripts/install.sh --redis-url redis://:PASSWORD@10.0.0.2:6379 --host-id h2
#   sudo bash scripts/install.sh --uninstall [--purge]
#
# What it does (each step says what it did; running it again changes only what differs):
#   1. the system user `lxcq` (the API runs as it; the worker runs as root);
#   2. the code: a copy of this checkout's files in /opt/lxcq/app with its dependencies
#      (`pnpm install --frozen-lockfile`, offline first), swapped in whole; or, with --in-place,
#      this checkout where it is. /opt/lxcq/bin/lxcq-api and lxcq-worker start them;
#   3. /etc/lxcq/lxcq.conf (root:lxcq, 0640) with a generated admin token, only when it is missing:
#      an existing one is kept as it is (its owner and mode are corrected);
#   4. without --redis-url: /etc/lxcq/redis.conf and lxcq-redis.service, a Redis on the unix
#      socket /run/lxcq-redis/redis.sock (AOF on) that only root and the lxcq group reach;
#   5. the units lxcq-api.service, lxcq-worker.service (from deploy/systemd/) in
#      /etc/systemd/system, then `systemctl daemon-reload`, enable, and start (restart when the
#      code or a unit changed).
#
# Options:
#   --redis-url URL   the Redis every host shares, written into a new lxcq.conf (no lxcq-redis)
#   --host-id ID      this host's id, written into a new lxcq.conf (default: the hostname)
#   --user NAME       the API's user and the config's group (default lxcq)
#   --only api|worker install, enable and start just that service (a host that only runs containers,
#                     or one that only serves the API); the config file is shared all the same
#   --in-place        run from this checkout instead of a copy (it must stay, readable by the user)
#   --no-start        install and enable, but do not start or restart anything
#   --root DIR        install into DIR as if it were / (every path, in files too, under DIR): for
#                     tests and inspection; never runs systemctl. The user is still created.
#   --dry-run         print what would be done, change nothing
#   --uninstall       stop and disable the units, remove them, the wrappers and the code copy;
#                     keeps the config, the Redis data and the user. Containers are not touched.
#   --purge           with --uninstall: also remove /etc/lxcq, the Redis data in
#                     /var/lib/lxcq-redis and the user
set -Eeuo pipefail
umask 022

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MIN_MAJOR=20 NODE_MIN_MINOR=19

ACTION=install PURGE=0 DRY=0 START=1 IN_PLACE=0 ROOT='' USER_NAME=lxcq REDIS_URL='' HOST_ID='' ONLY=''
usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --redis-url) REDIS_URL="${2:?--redis-url needs a URL}"; shift ;;
    --host-id) HOST_ID="${2:?--host-id needs an id}"; shift ;;
    --user) USER_NAME="${2:?--user needs a name}"; shift ;;
    --root) ROOT="${2:?--root needs a directory}"; shift ;;
    --only) ONLY="${2:?--only needs api or worker}"; shift ;;
    --in-place) IN_PLACE=1 ;;
    --no-start) START=0 ;;
    --dry-run) DRY=1 ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ -t 1 ]]; then C_B=$'\e[1m' C_G=$'\e[32m' C_Y=$'\e[33m' C_R=$'\e[31m' C_0=$'\e[0m'; else C_B='' C_G='' C_Y='' C_R='' C_0=''; fi
step() { printf '\n%s==> %s%s\n' "$C_B" "$*" "$C_0"; }
say() { printf '    %s\n' "$*"; }
ok() { printf '    %sok%s  %s\n' "$C_G" "$C_0" "$*"; }
warn() { printf '    %sWARNING%s  %s\n' "$C_Y" "$C_0" "$*" >&2; }
die() {
  printf '%sERROR%s  %s\n' "$C_R" "$C_0" "$*" >&2
  exit 1
}
trap 'die "install.sh failed at line $LINENO: $BASH_COMMAND"' ERR

[[ $PURGE == 0 || $ACTION == uninstall ]] || die "--purge goes with --uninstall"
[[ -z $ONLY || $ONLY == api || $ONLY == worker ]] || die "--only takes api or worker, not $ONLY"
[[ $EUID -eq 0 || $DRY == 1 ]] || die "run as root (sudo bash scripts/install.sh): it creates a user, writes /etc and runs systemctl"
[[ $USER_NAME =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "--user $USER_NAME is not a valid user name"
if [[ -n $HOST_ID && ! $HOST_ID =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]]; then
  die "--host-id $HOST_ID: letters, digits, '-', '.', '_' (at most 64)"
fi
if [[ -n $REDIS_URL && ! $REDIS_URL =~ ^(rediss?://[^[:space:]\'\"]+|/[^[:space:]\'\"]+)$ ]]; then
  die "--redis-url must be redis://[:password@]host:port[/db], rediss://... or the path of a unix socket"
fi
if [[ -n $ROOT ]]; then
  [[ $ROOT == /* ]] || die "--root needs an absolute path"
  ROOT="${ROOT%/}"
fi

# Every path, relocated under --root (file contents too, so a --root install is self-consistent).
PREFIX="$ROOT/opt/lxcq"
BIN_DIR="$PREFIX/bin"
CLI_LINK_DIR="$ROOT/usr/local/bin"
CLI_LINK="$CLI_LINK_DIR/lxcq"
APP_COPY="$PREFIX/app"
CONF_DIR="$ROOT/etc/lxcq"
CONF="$CONF_DIR/lxcq.conf"
REDIS_CONF="$CONF_DIR/redis.conf"
UNIT_DIR="$ROOT/etc/systemd/system"
REDIS_DATA="$ROOT/var/lib/lxcq-redis"
REDIS_SOCK="$ROOT/run/lxcq-redis/redis.sock"
UNITS=(lxcq-api.service lxcq-worker.service)
[[ -z $ONLY ]] || UNITS=("lxcq-$ONLY.service")
if [[ $IN_PLACE == 1 ]]; then APP="$REPO_ROOT"; else APP="$APP_COPY"; fi

# systemctl only on a host that systemd booted (sd_booted(): /run/systemd/system), never with --root;
# LXCQ_INSTALL_SYSTEMCTL names a stand-in to run instead (the tests record its calls)
SYSTEMCTL="${LXCQ_INSTALL_SYSTEMCTL:-systemctl}"
SYSTEMD=1
if [[ -n ${LXCQ_INSTALL_SYSTEMCTL:-} ]]; then
  say "systemctl: $SYSTEMCTL (LXCQ_INSTALL_SYSTEMCTL)"
elif [[ -n $ROOT ]]; then
  SYSTEMD=0
elif [[ ! -d /run/systemd/system ]]; then
  SYSTEMD=0
  warn "systemd is not running as init here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo '?')): the units are written, but not enabled or started"
fi

# run CMD...: runs it, or prints it under --dry-run
run() {
  if [[ $DRY == 1 ]]; then
    say "would run: $*"
  else
    "$@"
  fi
}

CODE_CHANGED=0      # the code or a wrapper changed: lxcq-api and lxcq-worker are restarted
declare -A RESTART=() # a unit whose file (or, for lxcq-redis, redis.conf) changed is restarted

# put_file PATH MODE OWNER:GROUP < content: writes it when it differs; says created/updated/unchanged
put_file() {
  local path="$1" mode="$2" owner="$3" tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    if [[ $DRY == 0 ]]; then
      chmod "$mode" "$path"
      chown "$owner" "$path"
    fi
    ok "$path unchanged"
    return 1
  fi
  local what=created
  [[ -e $path ]] && what=updated
  if [[ $DRY == 1 ]]; then
    rm -f "$tmp"
    say "would write $path ($mode $owner)"
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$path"
  ok "$path $what ($mode $owner)"
}

# render_unit NAME: deploy/systemd/NAME with this install's paths and user
render_unit() {
  # placeholders first, so that a replacement is never matched again by a later expression
  local sed_args=(-e 's|/opt/lxcq/app|@APP@|g' -e 's|/opt/lxcq/|@PREFIX@/|g' -e 's|/etc/lxcq/|@CONF@/|g')
  sed_args+=(-e "s|@APP@|$APP|g" -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONF@|$CONF_DIR|g")
  sed_args+=(-e "s|^User=lxcq\$|User=$USER_NAME|" -e "s|^Group=lxcq\$|Group=$USER_NAME|")
  # an in-place checkout under /home or /root must stay readable through ProtectHome
  if [[ $IN_PLACE == 1 && ($REPO_ROOT == /home/* || $REPO_ROOT == /root/* || $REPO_ROOT == /run/user/*) ]]; then
    sed_args+=(-e 's|^ProtectHome=yes$|ProtectHome=read-only|')
  fi
  sed "${sed_args[@]}" "$REPO_ROOT/deploy/systemd/$1"
}

# ---------------------------------------------------------------------------------------------
uninstall() {
  local units=(lxcq-api.service lxcq-worker.service lxcq-redis.service) u
  step "stopping and disabling ${units[*]}"
  if [[ $SYSTEMD == 1 ]]; then
    for u in "${units[@]}"; do
      if [[ -f $UNIT_DIR/$u ]]; then
        run "$SYSTEMCTL" disable --now "$u" || warn "could not stop $u"
      fi
    done
    say "containers keep running: stopping the worker never stops them"
  else
    say "skipped (no systemctl here)"
  fi
  step "removing units, wrappers and code"
  for u in "${units[@]}"; do
    if [[ -f $UNIT_DIR/$u ]]; then run rm -f "$UNIT_DIR/$u" && ok "removed $UNIT_DIR/$u"; fi
  done
  if [[ $SYSTEMD == 1 ]]; then run "$SYSTEMCTL" daemon-reload; fi
  for f in "$BIN_DIR/lxcq-api" "$BIN_DIR/lxcq-worker" "$BIN_DIR/lxcq"; do
    if [[ -f $f ]]; then run rm -f "$f" && ok "removed $f"; fi
  done
  if [[ -L $CLI_LINK && $(readlink "$CLI_LINK") == "$BIN_DIR/lxcq" ]]; then
    run rm -f "$CLI_LINK" && ok "removed $CLI_LINK"
  fi
  if [[ -d $APP_COPY ]]; then run rm -rf "$APP_COPY" "$APP_COPY.new" "$APP_COPY.old" && ok "removed $APP_COPY"; fi
  # /opt/lxcq may hold more than this (setup-host.sh's private CRIU): remove only what is empty
  [[ $DRY == 1 ]] || rmdir "$BIN_DIR" "$PREFIX" 2>/dev/null || true
  if [[ $PURGE == 1 ]]; then
    step "purging config, Redis data and user"
    if [[ -d $CONF_DIR ]]; then run rm -rf "$CONF_DIR" && ok "removed $CONF_DIR (token and settings)"; fi
    if [[ -d $REDIS_DATA ]]; then run rm -rf "$REDIS_DATA" && ok "removed $REDIS_DATA (lxcq-redis's AOF: jobs, events, registry)"; fi
    if getent passwd "$USER_NAME" >/dev/null; then
      if run userdel "$USER_NAME"; then ok "removed user $USER_NAME"; else die "could not remove the user $USER_NAME (a process still runs as it?)"; fi
    fi
    if getent group "$USER_NAME" >/dev/null; then
      if run groupdel "$USER_NAME"; then ok "removed group $USER_NAME"; else die "could not remove the group $USER_NAME"; fi
    fi
  else
    say "kept: $CONF_DIR, $REDIS_DATA and the user $USER_NAME (--purge removes them)"
  fi
  say "not touched: containers (${ROOT}/var/lib/lxc), worker data ($ROOT/var/lib/lxcq)"
  if [[ $DRY == 1 ]]; then printf '\n%sdry run: nothing was changed%s\n' "$C_B" "$C_0"; else printf '\n%slxcq uninstalled%s\n' "$C_B" "$C_0"; fi
}

if [[ $ACTION == uninstall ]]; then
  uninstall
  exit 0
fi

# ---------------------------------------------------------------------------------------------
step "1/5 checks"
NODE="$(command -v node || true)"
[[ -n $NODE ]] || die "node is not on PATH: run sudo bash scripts/setup-host.sh first"
node -e "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>$NODE_MIN_MAJOR||(a===$NODE_MIN_MAJOR&&b>=$NODE_MIN_MINOR)?0:1)" ||
  die "node $(node --version) is too old: lxcq needs Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
ok "node $(node --version) ($NODE)"
if [[ $IN_PLACE == 0 ]]; then
  command -v pnpm >/dev/null || die "pnpm is not on PATH: run sudo bash scripts/setup-host.sh first"
  ok "pnpm $(pnpm --version)"
else
  [[ -d $REPO_ROOT/node_modules ]] || die "--in-place: $REPO_ROOT has no node_modules (run pnpm install there first)"
fi
LOCAL_REDIS=0
existing_redis=''
if [[ -f $CONF ]]; then
  existing_redis="$(sed -n "s/^LXCQ_REDIS_URL=['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\}\$/\1/p" "$CONF" | tail -n 1)"
fi
# an existing config decides: lxcq-redis only when it points at lxcq-redis's socket
if [[ -z $REDIS_URL && (-z $existing_redis || $existing_redis == "$REDIS_SOCK") ]]; then
  LOCAL_REDIS=1
  REDIS_BIN="$(command -v redis-server || true)"
  [[ -n $REDIS_BIN ]] || die "redis-server is missing: install it (apt-get install redis-server, or scripts/setup-host.sh), or pass --redis-url"
  getent passwd redis >/dev/null || die "the user 'redis' (from the redis-server package) is missing; lxcq-redis.service runs as it"
  ok "a Redis of its own: lxcq-redis.service on $REDIS_SOCK ($REDIS_BIN)"
  UNITS=(lxcq-redis.service "${UNITS[@]}")
else
  ok "shared Redis: ${REDIS_URL:+--redis-url}${REDIS_URL:-LXCQ_REDIS_URL in $CONF} (no lxcq-redis)"
fi
if ! ldconfig -p 2>/dev/null | grep -q 'liblxc\.so\.1'; then
  warn "liblxc.so.1 is not installed: the worker will not start (sudo bash scripts/setup-host.sh installs it)"
fi

# ---------------------------------------------------------------------------------------------
step "2/5 user $USER_NAME"
if getent passwd "$USER_NAME" >/dev/null; then
  ok "user $USER_NAME exists"
else
  run useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin \
    --comment "lxcq API" "$USER_NAME"
  [[ $DRY == 1 ]] || ok "created system user $USER_NAME (no login, no home)"
fi

# ---------------------------------------------------------------------------------------------
step "3/5 code in $APP"
if [[ $IN_PLACE == 1 ]]; then
  ok "running from this checkout ($REPO_ROOT): keep it there, and update it with git pull + pnpm install"
  if [[ $DRY == 0 ]] && ! setpriv --reuid="$(id -u "$USER_NAME")" --regid="$(id -g "$USER_NAME")" --clear-groups \
    test -r "$REPO_ROOT/services/api/src/server.ts"; then
    die "$USER_NAME cannot read $REPO_ROOT: the API runs as $USER_NAME (install without --in-place to copy the code to $APP_COPY)"
  fi
else
  # the files of the checkout (tracked and untracked-but-not-ignored), or everything but the bulk
  filelist="$(mktemp)"
  if git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # (files deleted from the work tree but still in the index are left out)
    (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done) >"$filelist"
  else
    (cd "$REPO_ROOT" && find . -path ./node_modules -prune -o -path ./.git -prune -o -path '*/node_modules' -prune -o -type f -print0) >"$filelist"
  fi
  # What the copy is made of: the content of every file, and the lockfile through it.
  digest="$(cd "$REPO_ROOT" && xargs -0 -r sha256sum -- <"$filelist" | sha256sum | cut -c1-64)"
  if [[ -f $APP_COPY/.lxcq-install && "$(cat "$APP_COPY/.lxcq-install")" == "$digest" && -d $APP_COPY/node_modules ]]; then
    ok "$APP_COPY is this checkout already ($(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  elif [[ $DRY == 1 ]]; then
    say "would copy $(tr -cd '\0' <"$filelist" | wc -c) files to $APP_COPY and run pnpm install --frozen-lockfile there"
  else
    stage="$APP_COPY.new"
    rm -rf "$stage"
    mkdir -p "$stage"
    (cd "$REPO_ROOT" && tar --null -T "$filelist" -cf -) | tar -C "$stage" --no-same-owner -xf -
    chmod -R u+rwX,go+rX,go-w "$stage" # the code only: node_modules shares its files with pnpm's store
    say "copied $(tr -cd '\0' <"$filelist" | wc -c) files; pnpm install --frozen-lockfile (offline first)"
    t0=$SECONDS
    (
      cd "$stage"
      export CI=true
      pnpm install --frozen-lockfile --offline --config.confirmModulesPurge=false >"$stage.log" 2>&1 ||
        pnpm install --frozen-lockfile --config.confirmModulesPurge=false >>"$stage.log" 2>&1
    ) </dev/null || {
      tail -n 20 "$stage.log" >&2
      die "pnpm install in $stage failed (log: $stage.log)"
    }
    # the web dashboard's bundle (git-ignored, so not among the copied files): the API serves it
    (cd "$stage" && pnpm --filter @lxcq/dashboard build >>"$stage.log" 2>&1) </dev/null || {
      tail -n 20 "$stage.log" >&2
      die "building the web dashboard in $stage failed (log: $stage.log)"
    }
    rm -f "$stage.log"
    echo "$digest" >"$stage/.lxcq-install"
    # swap in whole: a running service keeps the files it has open until it is restarted below
    rm -rf "$APP_COPY.old"
    [[ -d $APP_COPY ]] && mv "$APP_COPY" "$APP_COPY.old"
    mv "$stage" "$APP_COPY"
    rm -rf "$APP_COPY.old"
    CODE_CHANGED=1
    ok "$APP_COPY ready ($((SECONDS - t0)) s for the dependencies)"
  fi
  rm -f "$filelist"
fi
for svc in api worker; do
  entry=services/api/src/server.ts
  [[ $svc == worker ]] && entry=services/worker/src/main.ts
  # cd + exec: one process (systemd's main pid is node itself); `--import tsx` resolves from the app
  if put_file "$BIN_DIR/lxcq-$svc" 0755 root:root <<EOF; then CODE_CHANGED=1; fi
#!/bin/sh
# lxcq-$svc, written by scripts/install.sh: the lxcq $svc from $APP on Node.js $NODE.
# Settings: LXCQ_CONFIG_FILE (the unit sets $CONF) and the environment (docs/configuration.md).
cd '$APP' || exit 1
exec '$NODE' --import tsx $entry "\$@"
EOF
done
# the CLI, on PATH through /usr/local/bin (a link that is ours; someone else's lxcq is left alone)
put_file "$BIN_DIR/lxcq" 0755 root:root <<EOF || true
#!/bin/sh
# lxcq, written by scripts/install.sh: the lxcq CLI from $APP on Node.js $NODE.
exec '$NODE' '$APP/packages/client/bin/lxcq.mjs' "\$@"
EOF
if [[ $DRY == 0 ]]; then
  mkdir -p "$CLI_LINK_DIR"
  if [[ -L $CLI_LINK || ! -e $CLI_LINK ]]; then
    ln -sfn "$BIN_DIR/lxcq" "$CLI_LINK" && ok "$CLI_LINK -> $BIN_DIR/lxcq (the CLI)"
  else
    warn "$CLI_LINK exists and is not a link: left as it is; the CLI is $BIN_DIR/lxcq"
  fi
fi

# ---------------------------------------------------------------------------------------------
step "4/5 settings in $CONF_DIR"
if [[ $DRY == 0 ]]; then
  mkdir -p "$CONF_DIR"
  chown "root:$USER_NAME" "$CONF_DIR"
  chmod 0750 "$CONF_DIR"
fi
if [[ -f $CONF ]]; then
  [[ $DRY == 1 ]] || { chown "root:$USER_NAME" "$CONF" && chmod 0640 "$CONF"; }
  ok "$CONF kept as it is (root:$USER_NAME 0640); edit it and systemctl restart lxcq-api lxcq-worker"
  [[ -z $REDIS_URL && -z $HOST_ID ]] || warn "--redis-url / --host-id are written only into a new $CONF: edit the existing one"
else
  token="$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
  if [[ $LOCAL_REDIS == 1 ]]; then redis_line="LXCQ_REDIS_URL=$REDIS_SOCK"; else redis_line="LXCQ_REDIS_URL='$REDIS_URL'"; fi
  if [[ -n $HOST_ID ]]; then host_line="LXCQ_HOST_ID=$HOST_ID"; else host_line="# LXCQ_HOST_ID=$(hostname)"; fi
  put_file "$CONF" 0640 "root:$USER_NAME" <<EOF || true
# lxcq settings, read by lxcq-api and lxcq-worker (LXCQ_CONFIG_FILE). Written by scripts/install.sh
# on $(date -u +%Y-%m-%d); kept on later installs. Every setting: docs/configuration.md. The
# environment wins over this file (systemctl edit lxcq-worker: Environment=LXCQ_THREADS=8).
# After a change: systemctl restart lxcq-api lxcq-worker. A bad setting stops the service with a
# message in journalctl -u lxcq-api / -u lxcq-worker.

# Redis: the same for the API and every worker. AOF on (docs/deployment.md).
$redis_line

# The admin token (Authorization: Bearer ...). Further tokens with scopes: LXCQ_TOKENS_FILE.
LXCQ_TOKEN=$token

# API: 127.0.0.1:7070. For other machines, bind 0.0.0.0 behind a TLS reverse proxy.
# LXCQ_HOST_BIND=127.0.0.1
# LXCQ_PORT=7070

# Worker: this host's id (default: the hostname) and where containers live.
$host_line
# LXCQ_LXCPATH=/var/lib/lxc
# LXCQ_THREADS=4

# Several hosts: where this worker receives migrated and cloned containers, and the address
# the other hosts reach it at.
# LXCQ_TRANSFER_BIND=0.0.0.0:7071
# LXCQ_TRANSFER_ADVERTISE=10.0.0.5:7071
EOF
  [[ $DRY == 1 ]] || say "admin token generated into $CONF (sudo grep LXCQ_TOKEN $CONF)"
fi
if [[ $LOCAL_REDIS == 1 ]]; then
  if put_file "$REDIS_CONF" 0640 "root:$USER_NAME" <<EOF; then RESTART[lxcq-redis.service]=1; fi
# lxcq's Redis (lxcq-redis.service), written by scripts/install.sh: a unix socket only, for root
# (the worker) and the group $USER_NAME (the API); no TCP port. AOF with an fsync every second:
# a crash of the whole host can lose the last second of accepted jobs (docs/deployment.md).
port 0
unixsocket $REDIS_SOCK
unixsocketperm 770
dir $REDIS_DATA
appendonly yes
appendfsync everysec
save ""
loglevel notice
EOF
fi

# ---------------------------------------------------------------------------------------------
step "5/5 systemd units in $UNIT_DIR"
for u in "${UNITS[@]}"; do
  if render_unit "$u" | put_file "$UNIT_DIR/$u" 0644 root:root; then RESTART[$u]=1; fi
  [[ $CODE_CHANGED == 0 || $u == lxcq-redis.service ]] || RESTART[$u]=1
done
if [[ $SYSTEMD == 0 ]]; then
  [[ -n $ROOT ]] && say "--root: no systemctl"
  say "start by hand (as systemd would):"
  say "  sudo -u $USER_NAME env LXCQ_CONFIG_FILE=$CONF $BIN_DIR/lxcq-api"
  say "  sudo env LXCQ_CONFIG_FILE=$CONF $BIN_DIR/lxcq-worker"
else
  run "$SYSTEMCTL" daemon-reload
  run "$SYSTEMCTL" enable "${UNITS[@]}"
  if [[ $START == 0 ]]; then
    say "--no-start: enabled, not started (systemctl start ${UNITS[*]})"
  else
    for u in "${UNITS[@]}"; do
      if [[ -n ${RESTART[$u]:-} ]]; then
        # the worker's restart lets running jobs finish (TimeoutStopSec); containers keep running
        run "$SYSTEMCTL" restart "$u"
        ok "$u restarted (changed)"
      else
        run "$SYSTEMCTL" start "$u" # nothing when it runs already
      fi
    done
  fi
  if [[ $START == 1 && $DRY == 0 ]]; then
    for u in "${UNITS[@]}"; do
      if "$SYSTEMCTL" is-active --quiet "$u"; then ok "$u active"; else warn "$u is not active: journalctl -u $u"; fi
    done
  fi
fi
if [[ $DRY == 1 ]]; then
  printf '\n%sdry run: nothing was changed%s\n' "$C_B" "$C_0"
  exit 0
fi
printf '\n%slxcq installed%s: API on http://127.0.0.1:7070 unless %s sets LXCQ_HOST_BIND/LXCQ_PORT\n' "$C_B" "$C_0" "$CONF"
say "token: sudo grep LXCQ_TOKEN $CONF"
say "CLI:   lxcq login --url http://127.0.0.1:7070 --token <that token>, then lxcq ls"
say "logs:  journalctl -u lxcq-api -u lxcq-worker -f"
