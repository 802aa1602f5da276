#!/usr/bin/env bash
# Installs (or upgrades) lark-bridge as a systemd service, from this checkout.
#
#   sudo scripts/install.sh [options]
#
#   --prefix DIR      where the code goes                      (default /opt/lark-bridge)
#   --user NAME       the system user that runs it, not root   (default lark-bridge)
#   --data-dir DIR    DATA_DIR, the store                       (default /var/lib/lark-bridge)
#   --config-dir DIR  the environment file and flows/           (default /etc/lark-bridge)
#   --unit-dir DIR    where the systemd unit goes               (default /etc/systemd/system)
#   --no-systemd      install the code and config, not the unit (no systemctl calls)
#   --dry-run         print every step, change nothing
#   --print-unit      print the systemd unit as it would be installed, and exit
#   -h, --help        this text
#
# Safe to run again: the user, the environment file and the flows are created only when
# missing; the code is rebuilt beside the old one and swapped in; a running service is
# restarted on the new code. Needs Node >= 20.18 and npm, and the npm registry.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "install: $*" >&2; exit 2; }

prefix=/opt/lark-bridge
user=lark-bridge
data_dir=/var/lib/lark-bridge
config_dir=/etc/lark-bridge
unit_dir=/etc/systemd/system
systemd=1
dry_run=0
print_unit=0

need_value() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#-}" = "$2" ] || fail "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --prefix) need_value "$@"; prefix=$2; shift 2 ;;
    --user) need_value "$@"; user=$2; shift 2 ;;
    --data-dir) need_value "$@"; data_dir=$2; shift 2 ;;
    --config-dir) need_value "$@"; config_dir=$2; shift 2 ;;
    --unit-dir) need_value "$@"; unit_dir=$2; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    --print-unit) print_unit=1; shift ;;
    *) fail "unknown argument \"$1\" (see --help)" ;;
  esac
done
for d in "$prefix" "$data_dir" "$config_dir" "$unit_dir"; do
  case "$d" in /*) ;; *) fail "\"$d\" must be an absolute path" ;; esac
done
[ "$user" != root ] || fail "--user root: the service must not run as root (give a system user; it is created if missing)"
[[ $user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--user \"$user\" is not a valid user name"

src=$(cd "$(dirname "$0")/.." && pwd)
node_bin=$(command -v node || true)
env_file=$config_dir/lark-bridge.env

# The unit as shipped, with this install's paths, user and node. StateDirectory= names a folder
# of /var/lib: kept for a DATA_DIR there, dropped for one elsewhere (ReadWritePaths= covers it).
render_unit() {
  local state
  case "$data_dir" in /var/lib/*) state="s#^StateDirectory=.*#StateDirectory=${data_dir#/var/lib/}#" ;; *) state='/^StateDirectory/d' ;; esac
  sed -e "s#^User=.*#User=$user#" \
      -e "s#^Group=.*#Group=$user#" \
      -e "s#/opt/lark-bridge#$prefix#g" \
      -e "s#/var/lib/lark-bridge#$data_dir#g" \
      -e "s#/etc/lark-bridge/flows#$config_dir/flows#g" \
      -e "s#^EnvironmentFile=.*#EnvironmentFile=$env_file#" \
      -e "s#^ExecStart=/usr/bin/node #ExecStart=${node_bin:-/usr/bin/node} #" \
      -e "$state" \
      "$src/scripts/lark-bridge.service"
}
if [ "$print_unit" = 1 ]; then
  render_unit
  exit 0
fi

run() {
  if [ "$dry_run" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
step() { printf '== %s\n' "$*"; }

# Checks first: nothing is changed unless all of them pass.
[ -n "$node_bin" ] || fail "node is not installed (Node >= 20.18 is needed)"
command -v npm >/dev/null || fail "npm is not installed"
"$node_bin" -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=18)?0:1)' \
  || fail "node $("$node_bin" --version) is too old: Node >= 20.18 is needed"
if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then fail "run it as root (sudo), or with --dry-run to see the steps"; fi
if [ "$systemd" = 1 ] && [ "$dry_run" = 0 ] && ! command -v systemctl >/dev/null; then fail "systemctl not found: use --no-systemd and start node $prefix/dist/main.js your way"; fi

step "user $user"
if getent passwd "$user" >/dev/null; then
  echo "exists"
else
  run useradd --system --user-group --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
fi

step "code in $prefix (built beside the old code, then swapped in)"
stage=$prefix.new
run rm -rf "$stage"
run mkdir -p "$stage"
# The checkout without what is built, installed or private to this machine.
if [ "$dry_run" = 1 ]; then
  echo "+ tar -C $src --exclude=./node_modules --exclude=./dist --exclude=./data --exclude=./.git --exclude=./.env --exclude=./tls -cf - . | tar -C $stage -xf -"
else
  tar -C "$src" --exclude=./node_modules --exclude=./dist --exclude=./data --exclude=./.git --exclude=./.env --exclude=./tls --exclude=./coverage -cf - . | tar -C "$stage" -xf -
fi
run npm --prefix "$stage" ci --no-audit --no-fund
run npm --prefix "$stage" run build
# Runtime needs no TypeScript or test tools.
run npm --prefix "$stage" prune --omit=dev --no-audit --no-fund
run chown -R root:root "$stage"
run chmod -R u=rwX,go=rX "$stage"
run rm -rf "$prefix.old"
if [ -e "$prefix" ]; then run mv "$prefix" "$prefix.old"; fi
run mv "$stage" "$prefix"
run rm -rf "$prefix.old"

step "configuration in $config_dir"
run mkdir -p "$config_dir"
run chown "root:$user" "$config_dir"
run chmod 750 "$config_dir"
if [ -e "$env_file" ]; then
  echo "$env_file exists: kept"
elif [ "$dry_run" = 1 ]; then
  echo "+ write $env_file (commented template, mode 640, root:$user)"
else
  umask 027
  cat > "$env_file" <<EOF
# lark-bridge environment (systemd EnvironmentFile). Every variable is described in
# $prefix/README.md (Configuration). Restart after a change: systemctl restart lark-bridge
# HOST=127.0.0.1
# PORT=9876
# PUBLIC_BASE_URL=https://bridge.example.com
# API_TOKENS=
# LARK_APP_ID=
# LARK_APP_SECRET=
# LARK_ENCRYPT_KEY=
# LARK_VERIFICATION_TOKEN=
# LARK_ASSISTANT_USER_ID=
# CHAT_ID=
# SENTRY_DSN=
EOF
  chown "root:$user" "$env_file"
  chmod 640 "$env_file"
fi
if [ -d "$config_dir/flows" ]; then
  echo "$config_dir/flows exists: kept (the schema is refreshed)"
  run cp "$src/flows/flow.schema.json" "$config_dir/flows/flow.schema.json"
else
  # The examples: not loaded until their variables are set (the start-up banner says which).
  run cp -R "$src/flows" "$config_dir/flows"
fi
run chown -R "root:$user" "$config_dir/flows"
run chmod -R u=rwX,g=rX,o= "$config_dir/flows"

step "data in $data_dir"
run mkdir -p "$data_dir"
run chown "$user:$user" "$data_dir"
run chmod 750 "$data_dir"

if [ "$systemd" = 1 ]; then
  unit=$unit_dir/lark-bridge.service
  step "systemd unit $unit"
  if [ "$dry_run" = 1 ]; then
    echo "+ write $unit (scripts/install.sh --print-unit shows it)"
  else
    "$0" --print-unit --prefix "$prefix" --user "$user" --data-dir "$data_dir" --config-dir "$config_dir" > "$unit"
    chmod 644 "$unit"
    if command -v systemd-analyze >/dev/null; then systemd-analyze verify "$unit" || echo "install: systemd-analyze verify reported problems (above)" >&2; fi
  fi
  run systemctl daemon-reload
  # An upgrade: a running service restarts on the new code (a stopped one stays stopped).
  run systemctl try-restart lark-bridge.service
  cat <<EOF
Done. Next:
  1. put your settings in $env_file (API_TOKENS, LARK_APP_ID, …)
  2. systemctl enable --now lark-bridge
  3. journalctl -u lark-bridge -f     and     curl -s http://127.0.0.1:9876/readyz
EOF
else
  echo "Done (no systemd unit). Start it as $user from $prefix with the variables of $env_file and"
  echo "  DATA_DIR=$data_dir FLOWS_DIR=$config_dir/flows node --enable-source-maps dist/main.js"
fi
