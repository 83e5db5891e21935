#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) are reachable
# and that the database `hookfleet` exists. RabbitMQ also gets a TLS listener on
# 127.0.0.1:5671 for the amqps tests (see ensure_rabbitmq_tls).
#
#   running            -> nothing is touched; prints one "ok" line
#   installed, stopped -> started (systemd if it runs, else pg_ctlcluster /
#                         rabbitmq-server -detached, or Homebrew services)
#   absent             -> apt-get install (Debian/Ubuntu, as root or passwordless
#                         sudo), else docker compose (deploy/docker-compose.yml),
#                         else prints what to install and exits 1
#
# Idempotent and never stops or restarts a running service, so every make target
# can call it. Written for bash 3.2 too (macOS).
set -uo pipefail

PG_PORT=5432
MQ_PORT=5672
DB_NAME=hookfleet
PG_WAIT=60     # seconds to wait for PostgreSQL after starting it
MQ_WAIT=90     # RabbitMQ boots slowly (Erlang VM, plugins, queue recovery)

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="$ROOT_DIR/deploy/docker-compose.yml"
# Server tools often live in sbin dirs that a normal user's PATH lacks.
PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin:/opt/homebrew/sbin:/opt/homebrew/bin"
# Output of start/install commands goes here, never to our stdout: a daemon that
# inherits a pipe (e.g. `make test | tee`) would keep the reader waiting forever.
LOG="${TMPDIR:-/tmp}/hookfleet-services.$(id -u).log"

say()  { echo "services: $*" >&2; }
die()  { echo "services: error: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# Run with a time limit where coreutils `timeout` exists (macOS has none by default).
with_timeout() {
  local secs=$1; shift
  if have timeout; then timeout "$secs" "$@"; else "$@"; fi
}

# Run a start/install command with its output in $LOG and stdin detached.
logged() {
  echo "--- $(date '+%F %T') $*" >>"$LOG"
  "$@" </dev/null >>"$LOG" 2>&1
}

# Root runs things directly; otherwise use sudo if it needs no password or we can
# prompt on a terminal. Empty + CAN_ROOT=0 means "try unprivileged and hope".
SUDO=""
CAN_ROOT=1
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"
  elif have sudo && [ -t 0 ]; then SUDO="sudo"
  else CAN_ROOT=0
  fi
fi
as_root() { if [ -n "$SUDO" ]; then $SUDO "$@"; else "$@"; fi; }

systemd_running() { [ -d /run/systemd/system ] && have systemctl; }
# (grep >/dev/null rather than grep -q in pipelines: with pipefail, grep -q's early
# exit can fail the pipeline through SIGPIPE in the writer.)
systemd_has_unit() { systemctl list-unit-files "$1.service" 2>/dev/null | grep "^$1\.service" >/dev/null; }

tcp_open() {  # bash's /dev/tcp: needs no extra tools
  with_timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for() {  # wait_for <seconds> <check command...>
  local secs=$1; shift
  local i=0
  while [ "$i" -lt "$secs" ]; do
    "$@" && return 0
    sleep 1; i=$((i + 1))
  done
  "$@"
}

# Take a lock before changing anything, so two make targets started together do
# not both run apt-get or start the same server. (No flock on macOS: skip it.)
LOCKED=0
lock() {
  [ "$LOCKED" = 1 ] && return 0
  if have flock; then
    exec 9>"${TMPDIR:-/tmp}/hookfleet-services.$(id -u).lock"
    flock -w 600 9 || die "timed out waiting for another scripts/services.sh"
  fi
  LOCKED=1
}

# ---------------------------------------------------------------- PostgreSQL

pg_up() {
  if have pg_isready; then
    # 0 = accepting; 1 = rejecting (starting up or shutting down) counts as down.
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 3
  else
    tcp_open "$PG_PORT"
  fi
}

pg_installed() {
  ls /etc/postgresql/*/*/postgresql.conf >/dev/null 2>&1 && return 0   # Debian cluster
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && return 0     # Debian server pkg
  if have postgres || have pg_ctl; then return 0; fi
  systemd_running && systemd_has_unit postgresql && return 0
  have brew && brew list --formula 2>/dev/null | grep '^postgresql' >/dev/null && return 0
  return 1
}

pg_start() {
  say "PostgreSQL is installed but not running on 127.0.0.1:$PG_PORT; starting it"
  if systemd_running && systemd_has_unit postgresql; then
    logged as_root systemctl start postgresql
  elif have pg_lsclusters && have pg_ctlcluster; then
    # Debian/Ubuntu without systemd (containers, CI, this dev box). Start the
    # cluster(s) on our port; create one if the server is installed without any.
    local clusters
    clusters=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 != "online" {print $1 " " $2}')
    if [ -z "$clusters" ] && ! ls /etc/postgresql/*/*/postgresql.conf >/dev/null 2>&1; then
      local ver
      ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)  # newest installed server
      [ -n "$ver" ] && logged as_root pg_createcluster "$ver" main --port "$PG_PORT"
      clusters=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p && $4 != "online" {print $1 " " $2}')
    fi
    local v c
    echo "$clusters" | while read -r v c; do
      [ -n "$v" ] && logged as_root pg_ctlcluster --skip-systemctl-redirect "$v" "$c" start
    done
  elif [ -x /etc/init.d/postgresql ] && have service; then
    logged as_root service postgresql start
  elif have brew; then
    local formula
    formula=$(brew list --formula 2>/dev/null | grep -m1 '^postgresql')
    logged brew services start "$formula"
  fi
  wait_for "$PG_WAIT" pg_up
}

# ------------------------------------------------------------------ RabbitMQ

mq_up() { tcp_open "$MQ_PORT"; }

mq_installed() {
  have rabbitmq-server && return 0
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && return 0
  have brew && brew list --formula 2>/dev/null | grep '^rabbitmq$' >/dev/null && return 0
  return 1
}

# The Erlang node can be alive with the rabbit app stopped (`rabbitmqctl
# stop_app`, as the broker_restart test does briefly). Starting a second node
# would fail, so that case is handled apart.
mq_node_alive() {
  have rabbitmq-diagnostics || return 1
  with_timeout 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1
}

mq_start() {
  if mq_node_alive; then
    # Still booting, or a test restarting the app: give it time before stepping in.
    say "RabbitMQ node is up but not listening on $MQ_PORT; waiting up to ${MQ_WAIT}s"
    wait_for "$MQ_WAIT" mq_up && return 0
    say "still not listening; running rabbitmqctl start_app"
    logged with_timeout 60 rabbitmqctl start_app
    wait_for 30 mq_up
    return
  fi
  say "RabbitMQ is installed but not running on 127.0.0.1:$MQ_PORT; starting it (takes a while)"
  # A node whose rabbitmq.conf has our TLS listener does not boot without its files.
  if have openssl && as_root grep 'hookfleet scripts/services.sh: a TLS listener' "$MQ_CONF" >/dev/null 2>&1; then
    mq_tls_files
  fi
  if systemd_running && systemd_has_unit rabbitmq-server; then
    mq_systemd_nofile
    logged as_root systemctl start rabbitmq-server
  elif have brew && brew list --formula 2>/dev/null | grep '^rabbitmq$' >/dev/null; then
    logged brew services start rabbitmq
  else
    # Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user itself,
    # through su, whose pam_limits sets the soft limit back to 1,024: the
    # node's env file raises it again (mq_env_nofile). The node keeps the file
    # limit it starts with: raise it first (see MQ_NOFILE), or to the hard
    # limit where that is all we may do.
    mq_env_nofile
    logged as_root bash -c "ulimit -n $MQ_NOFILE 2>/dev/null || ulimit -n \$(ulimit -Hn) 2>/dev/null; exec rabbitmq-server -detached"
  fi
  wait_for "$MQ_WAIT" mq_up
}

# One classic queue per endpoint (docs/SCALING.md §3): an idle classic v1
# queue holds no file, but connections and busy queues' index journals do, and
# RabbitMQ sizes its file handle cache from the limit it boots with. Debian
# ships 1,024; a node for tens of thousands of endpoints wants 65,536.
MQ_NOFILE=65536

# systemd starts the unit with LimitNOFILE, not our ulimit: a drop-in sets it.
mq_systemd_nofile() {
  [ "$CAN_ROOT" = 1 ] || return 0
  local d=/etc/systemd/system/rabbitmq-server.service.d
  [ -f "$d/hookfleet-nofile.conf" ] && return 0
  as_root mkdir -p "$d" \
    && printf '[Service]\nLimitNOFILE=%s\n' "$MQ_NOFILE" | as_root tee "$d/hookfleet-nofile.conf" >/dev/null \
    && logged as_root systemctl daemon-reload
}

# rabbitmq-env.conf is sourced by the node's start script as the user it runs
# as, after su: a marked line there raises the soft limit (up to the hard one).
MQ_ENV_CONF=${RABBITMQ_CONF_ENV_FILE:-/etc/rabbitmq/rabbitmq-env.conf}
mq_env_nofile() {
  [ "$CAN_ROOT" = 1 ] || return 0
  [ -d "$(dirname "$MQ_ENV_CONF")" ] || return 0
  as_root grep 'hookfleet scripts/services.sh: nofile' "$MQ_ENV_CONF" >/dev/null 2>&1 && return 0
  printf '# hookfleet scripts/services.sh: nofile (docs/SCALING.md §3)\nulimit -n %s 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true\n' "$MQ_NOFILE" \
    | as_root tee -a "$MQ_ENV_CONF" >/dev/null \
    && say "raised RabbitMQ's file limit in $MQ_ENV_CONF (su resets it to 1,024)"
}

# A running node is never restarted; say when its limit is below what many
# endpoints need.
mq_check_nofile() {
  have rabbitmq-diagnostics || return 0
  local limit
  limit=$(with_timeout 20 rabbitmq-diagnostics -q status 2>/dev/null \
    | awk '/File Descriptors/ {f=1} f && /^Total: / {print $NF; exit}')
  case "$limit" in ''|*[!0-9]*) return 0 ;; esac
  if [ "$limit" -lt 10000 ]; then
    say "note: RabbitMQ runs with a limit of $limit file descriptors; fine for tests and a few thousand endpoints. For tens of thousands of endpoints restart it with 'ulimit -n $MQ_NOFILE' (this script does so when it starts the node; see docs/SCALING.md §3)."
  fi
}

# ------------------------------------------------------------ RabbitMQ TLS

# The amqps tests (tests/e2e/broker_tls.rs) need a TLS listener on the local
# node. Once, this makes a development CA and a server certificate for
# localhost and 127.0.0.1 in $MQ_TLS_DIR (openssl), then starts the listener in
# the running node with `rabbitmqctl eval`: no restart, so the connections of
# tests already running are untouched. It also adds the listener to
# rabbitmq.conf (a marked block, only when that file names no TLS listener
# yet), so a node started later has it from boot.
#
# The listener asks for a client certificate and checks it against the CA
# (verify_peer) but lets clients without one in (fail_if_no_peer_cert=false).
# The CA's key is left readable: the tests sign their client certificates
# with it. It is a development CA that only this listener trusts; nothing else
# on the machine does.
MQ_TLS_PORT=5671
MQ_TLS_DIR=/var/lib/rabbitmq/hookfleet-tls
MQ_CONF=${RABBITMQ_CONFIG_FILE:-/etc/rabbitmq/rabbitmq.conf}
case "$MQ_CONF" in *.conf) ;; *) MQ_CONF="$MQ_CONF.conf" ;; esac

mq_tls_up() { tcp_open "$MQ_TLS_PORT"; }

mq_tls_files() {
  local d=$MQ_TLS_DIR f missing=0
  for f in ca.pem ca.key server.pem server.key; do
    as_root test -s "$d/$f" || missing=1
  done
  [ "$missing" = 0 ] && return 0
  say "making a development CA and a server certificate for the RabbitMQ TLS listener in $d"
  local tmp
  tmp=$(mktemp -d) || return 1
  (
    set -e
    cd "$tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.pem -days 3650 -subj "/CN=hookfleet development CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out server.pem -days 3650 -extfile server.ext
  ) >>"$LOG" 2>&1 || { rm -rf "$tmp"; say "openssl failed; see $LOG"; return 1; }
  as_root mkdir -p "$d" \
    && as_root cp "$tmp/ca.pem" "$tmp/ca.key" "$tmp/server.pem" "$tmp/server.key" "$d/" \
    && as_root chmod 0755 "$d" \
    && as_root chmod 0644 "$d/ca.pem" "$d/ca.key" "$d/server.pem" \
    && as_root chmod 0640 "$d/server.key"
  local rc=$?
  rm -rf "$tmp"
  [ "$rc" = 0 ] || return 1
  # The node runs as the rabbitmq user: it must read the server's key.
  id rabbitmq >/dev/null 2>&1 && as_root chown rabbitmq "$d/server.key"
  return 0
}

# The node's start_ssl_listener: as rabbitmq.conf's listeners.ssl would.
mq_tls_listen() {
  local d=$MQ_TLS_DIR out
  out=$(with_timeout 60 rabbitmqctl eval "rabbit_networking:start_ssl_listener({\"127.0.0.1\", $MQ_TLS_PORT}, [{cacertfile, \"$d/ca.pem\"}, {certfile, \"$d/server.pem\"}, {keyfile, \"$d/server.key\"}, {verify, verify_peer}, {fail_if_no_peer_cert, false}], 1)." 2>&1)
  echo "--- $(date '+%F %T') start_ssl_listener: $out" >>"$LOG"
  wait_for 10 mq_tls_up
}

mq_tls_persist() {
  [ -e "$MQ_CONF" ] || [ -d "$(dirname "$MQ_CONF")" ] || return 0
  as_root grep -E '^[[:space:]]*(listeners\.ssl|ssl_options)' "$MQ_CONF" >/dev/null 2>&1 && return 0
  local d=$MQ_TLS_DIR
  printf '\n# added by hookfleet scripts/services.sh: a TLS listener for the amqps tests\nlisteners.ssl.local = 127.0.0.1:%s\nssl_options.cacertfile = %s/ca.pem\nssl_options.certfile = %s/server.pem\nssl_options.keyfile = %s/server.key\nssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = false\n' \
    "$MQ_TLS_PORT" "$d" "$d" "$d" | as_root tee -a "$MQ_CONF" >/dev/null \
    && say "added the TLS listener (127.0.0.1:$MQ_TLS_PORT) to $MQ_CONF"
}

ensure_rabbitmq_tls() {
  mq_tls_up && return 0
  if ! have openssl && is_debian && [ "$CAN_ROOT" = 1 ]; then
    lock
    say "installing openssl for the RabbitMQ TLS listener's certificates (output in $LOG)"
    logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl \
      || { logged as_root env DEBIAN_FRONTEND=noninteractive apt-get update \
           && logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl; } \
      || say "could not install openssl; see $LOG"
  fi
  local why=""
  if ! have openssl; then why="openssl is not installed"
  elif ! have rabbitmqctl; then why="rabbitmqctl is not on the PATH"
  elif [ "$CAN_ROOT" != 1 ]; then why="it needs root or sudo"
  elif [ ! -d /var/lib/rabbitmq ]; then why="/var/lib/rabbitmq does not exist (not a Debian-style install)"
  fi
  if [ -n "$why" ]; then
    say "note: no RabbitMQ TLS listener on 127.0.0.1:$MQ_TLS_PORT ($why); the amqps tests will say they are skipped"
    return 0
  fi
  lock
  mq_tls_up && return 0
  mq_tls_files || { say "could not make the TLS certificates; the amqps tests will say they are skipped"; return 0; }
  mq_tls_persist
  if mq_tls_listen; then
    say "RabbitMQ TLS listener started on 127.0.0.1:$MQ_TLS_PORT (certificates in $MQ_TLS_DIR)"
  else
    say "could not start the RabbitMQ TLS listener on $MQ_TLS_PORT; see $LOG and /var/log/rabbitmq/"
  fi
}

# ------------------------------------------------------------ installing

is_debian() { [ -f /etc/debian_version ] && have apt-get; }
# A Docker engine that answers, and the compose plugin (the CLI alone is not enough).
docker_ok() {
  have docker && docker compose version >/dev/null 2>&1 \
    && with_timeout 15 docker info >/dev/null 2>&1
}

apt_install() {  # apt_install <package...>
  say "installing $* with apt-get (output in $LOG)"
  if ! logged as_root env DEBIAN_FRONTEND=noninteractive apt-get update; then
    die "apt-get update failed; see $LOG"
  fi
  if ! logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
    die "apt-get install $* failed; see $LOG"
  fi
}

# Only for a server this script has just installed with apt-get: let hookfleet's
# default database.url (user postgres, no password, over loopback) in, as on the
# project's own machines. Existing installations are never edited.
trust_loopback() {  # trust_loopback <pg_hba.conf...>
  local f tmp
  for f in "$@"; do
    [ -f "$f" ] || continue
    as_root grep '^host all all 127.0.0.1/32 trust' "$f" >/dev/null && continue
    tmp=$(mktemp) || return 1
    {
      echo "# added by hookfleet scripts/services.sh: passwordless loopback logins for development"
      echo "host all all 127.0.0.1/32 trust"
      echo "host all all ::1/128 trust"
      as_root cat "$f"
    } >"$tmp" && as_root cp "$tmp" "$f"   # cp keeps the file's owner and mode
    rm -f "$tmp"
    say "set trust auth for 127.0.0.1 and ::1 in $f"
  done
}

compose_up() {  # compose_up <service> <check>
  local svc=$1 check=$2
  say "$svc is not installed; starting it with docker compose ($COMPOSE_FILE)"
  logged docker compose -f "$COMPOSE_FILE" up -d "$svc" || die "docker compose up $svc failed; see $LOG"
  wait_for 120 "$check"   # the first run pulls the image
}

install_hint() {
  cat >&2 <<HINT
services: cannot start $1 automatically (not installed, not root/sudo on
Debian/Ubuntu, no Docker engine). Install and start PostgreSQL and RabbitMQ:

  Debian/Ubuntu:  sudo apt-get install -y postgresql rabbitmq-server
  Fedora:         sudo dnf install -y postgresql-server postgresql rabbitmq-server
                  sudo postgresql-setup --initdb
                  sudo systemctl enable --now postgresql rabbitmq-server
  macOS:          brew install postgresql@16 rabbitmq
                  brew services start postgresql@16 && brew services start rabbitmq
  Any OS with Docker:
                  docker compose -f deploy/docker-compose.yml up -d postgres rabbitmq

Then run scripts/services.sh again.
HINT
  exit 1
}

ensure_postgres() {
  pg_up && return 0
  lock
  pg_up && return 0     # someone else started it while we waited for the lock
  if pg_installed; then
    pg_start || die "PostgreSQL did not come up on 127.0.0.1:$PG_PORT within ${PG_WAIT}s; see $LOG and the server log (/var/log/postgresql/ on Debian)"
  elif is_debian && [ "$CAN_ROOT" = 1 ]; then
    apt_install postgresql postgresql-client
    trust_loopback /etc/postgresql/*/*/pg_hba.conf
    pg_start || die "PostgreSQL was installed but did not come up; see $LOG"
    # The package may have started the server before the edit above.
    as_postgres "psql -X -p $PG_PORT -qtAc 'select pg_reload_conf()'" >>"$LOG" 2>&1
  elif docker_ok; then
    PG_IN_DOCKER=1   # the image creates the database (POSTGRES_DB) with trust auth
    compose_up postgres pg_up || die "the postgres container did not become ready; see docker compose -f $COMPOSE_FILE logs postgres"
  else
    install_hint PostgreSQL
  fi
}

ensure_rabbitmq() {
  mq_up && { mq_check_nofile; return 0; }
  lock
  mq_up && return 0
  if mq_installed; then
    mq_start || die "RabbitMQ did not come up on 127.0.0.1:$MQ_PORT within ${MQ_WAIT}s; see $LOG and /var/log/rabbitmq/"
  elif is_debian && [ "$CAN_ROOT" = 1 ]; then
    apt_install rabbitmq-server
    mq_start || die "RabbitMQ was installed but did not come up; see $LOG"
  elif docker_ok; then
    compose_up rabbitmq mq_up || die "the rabbitmq container did not become ready; see docker compose -f $COMPOSE_FILE logs rabbitmq"
  else
    install_hint RabbitMQ
  fi
}

# ------------------------------------------------------------- database

PG_IN_DOCKER=0
DB_QUERY="select 1 from pg_database where datname='$DB_NAME'"

# As hookfleet connects by default: TCP, user postgres, no password (-w never
# prompts; PGPASSWORD or ~/.pgpass still apply).
pg_tcp() { psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -w -tAc "$1"; }

# As the postgres OS user over the Unix socket: peer auth works there on a fresh
# Debian/Ubuntu/Fedora install, where TCP wants a password.
as_postgres() {
  id postgres >/dev/null 2>&1 || return 1
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && su postgres -s /bin/sh -c "$1")
  elif [ -n "$SUDO" ]; then
    (cd / && $SUDO -u postgres sh -c "$1")
  else
    return 1
  fi
}

auth_hint() {
  local hba
  hba=$(as_postgres "psql -X -p $PG_PORT -tAc 'show hba_file'" 2>/dev/null) || hba="pg_hba.conf"
  cat >&2 <<HINT
services: PostgreSQL on 127.0.0.1:$PG_PORT refuses a passwordless login as user
'postgres', which hookfleet's default database.url needs
(postgres://postgres@127.0.0.1:$PG_PORT/$DB_NAME). For a development machine either
  - trust local TCP logins: put this line above the other "host" lines of
      ${hba:-pg_hba.conf}
        host  all  postgres  127.0.0.1/32  trust
    and reload:  sudo -u postgres psql -c 'select pg_reload_conf()'
  - or give postgres a password and export both
        PGPASSWORD=<password>
        HOOKFLEET__DATABASE__URL=postgres://postgres:<password>@127.0.0.1:$PG_PORT/$DB_NAME
  - on macOS (Homebrew), where the superuser is your login name:
        createuser -h 127.0.0.1 -s postgres
HINT
}

ensure_database() {
  if ! have psql; then
    [ "$PG_IN_DOCKER" = 1 ] && return 0
    say "warning: psql not found, cannot check that database '$DB_NAME' exists (install the PostgreSQL client)"
    return 0
  fi
  local out
  if out=$(pg_tcp "$DB_QUERY" 2>>"$LOG"); then
    [ "$out" = 1 ] && return 0
    lock
    [ "$(pg_tcp "$DB_QUERY" 2>/dev/null)" = 1 ] && return 0
    say "creating database $DB_NAME"
    logged createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres -w "$DB_NAME" \
      || die "createdb $DB_NAME failed; see $LOG"
    return 0
  fi

  # No passwordless TCP login: still create the database through the socket so
  # that only the auth setting is left to the developer, then explain.
  say "psql -h 127.0.0.1 -U postgres: $(pg_tcp 'select 1' 2>&1 | tail -1)"
  lock
  if out=$(as_postgres "psql -X -p $PG_PORT -tAc \"$DB_QUERY\"" 2>>"$LOG"); then
    if [ "$out" != 1 ]; then
      say "creating database $DB_NAME (as the postgres OS user)"
      logged as_postgres "createdb -p $PG_PORT $DB_NAME" || die "createdb $DB_NAME failed; see $LOG"
    fi
  else
    say "could not create database '$DB_NAME': no TCP login and no access as the postgres OS user"
    say "create it yourself, e.g.  sudo -u postgres createdb $DB_NAME"
  fi
  auth_hint
  # Someone with their own database URL (e.g. with a password) can go on.
  if [ -n "${HOOKFLEET__DATABASE__URL:-}" ]; then
    say "HOOKFLEET__DATABASE__URL is set, so going on; make sure it can log in"
    return 0
  fi
  exit 1
}

# promtool (Prometheus's) checks /metrics output and the alert rules in the tests.
# Not a service: installed when absent and we can, else we say what to install.
ensure_promtool() {
  have promtool && return 0
  if is_debian && [ "$CAN_ROOT" = 1 ]; then
    lock
    have promtool && return 0
    say "installing promtool (Debian package prometheus, output in $LOG)"
    logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
      || { logged as_root env DEBIAN_FRONTEND=noninteractive apt-get update \
           && logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; } \
      || say "could not install prometheus; see $LOG"
  fi
  have promtool || say "promtool not found: the metrics and alert-rule tests need it (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus; or the release tarball from prometheus.io)"
}

# Chromium and ChromeDriver drive the tenant portal's browser tests
# (tests/e2e/portal.rs). Not services either: installed when absent and we can.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
  if is_debian && [ "$CAN_ROOT" = 1 ]; then
    lock
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
    say "installing chromium and chromium-driver for the portal's browser tests (output in $LOG)"
    logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver \
      || { logged as_root env DEBIAN_FRONTEND=noninteractive apt-get update \
           && logged as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; } \
      || say "could not install chromium; see $LOG"
  fi
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
    || say "chromium/chromedriver not found at /usr/bin: the portal's browser tests need them (Debian/Ubuntu: apt-get install chromium chromium-driver)"
}

# ------------------------------------------------------------------ main

ensure_postgres
ensure_database
ensure_rabbitmq
ensure_rabbitmq_tls
ensure_promtool
ensure_chromium
if mq_tls_up; then echo "services: postgres ok, rabbitmq ok (tls on $MQ_TLS_PORT)"; else echo "services: postgres ok, rabbitmq ok"; fi
