# Shared service set-up for deploy/*.sh: each function starts a service if it is down and installs
# it with apt-get if it is absent. Sourced, not run.

log() { printf '== %s\n' "$*" >&2; }

apt_install() {
  log "installing $* with apt-get"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for SECONDS command...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-client
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for 60 pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start; see /var/log/postgresql/" >&2; exit 1; }
  # Tests connect as postgres over TCP without a password, as on the CI machine.
  if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    local hba; hba=$(ls /etc/postgresql/"$version"/main/pg_hba.conf)
    sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/; s/^\(host\s\+all\s\+all\s\+::1\/128\s\+\)\S\+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
}

mariadb_up() { mysqladmin -h 127.0.0.1 -P 3306 -uroot ping; }

ensure_mariadb() {
  if mariadb_up >/dev/null 2>&1; then return; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for 60 mariadb_up || { echo "MariaDB did not start" >&2; exit 1; }
  # Root over TCP with an empty password, as on the CI machine.
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket" 2>/dev/null || true
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 30 redis-cli -h 127.0.0.1 -p 6379 ping
}

clickhouse_up() ( # answers on the HTTP interface; /dev/tcp so a fresh machine needs no curl
  { exec 3<>/dev/tcp/127.0.0.1/8123; } 2>/dev/null || exit 1
  printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  grep -q '^Ok\.' <&3
)

# ClickHouse (Debian's clickhouse-server) for the ClickHouse projection sink (strangler-clickhouse).
ensure_clickhouse() {
  if clickhouse_up; then return; fi
  command -v clickhouse-server >/dev/null || apt_install clickhouse-server clickhouse-client
  log "starting ClickHouse"
  mkdir -p /var/log/clickhouse-server /var/lib/clickhouse
  chown -R clickhouse:clickhouse /var/log/clickhouse-server /var/lib/clickhouse 2>/dev/null || true
  setsid runuser -u clickhouse -- clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
    >/var/log/clickhouse-server/ci.out 2>&1 </dev/null &
  wait_for 90 clickhouse_up || {
    echo "ClickHouse did not start; see /var/log/clickhouse-server/" >&2; exit 1; }
}

# Headless Chromium and its WebDriver for the dashboard's end-to-end test (tests/admin).
ensure_chromium() {
  if command -v chromedriver >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then return; fi
  apt_install chromium chromium-driver
}

tansu_bin() {
  if [ -n "${TANSU_BIN:-}" ]; then echo "$TANSU_BIN"; return; fi
  if [ -x "$HOME/.cargo/bin/tansu" ]; then echo "$HOME/.cargo/bin/tansu"; return; fi
  command -v tansu || true
}

ensure_tansu() {
  if [ -n "$(tansu_bin)" ]; then return; fi
  log "installing the tansu broker (about 10 minutes, once per machine)"
  cargo install tansu --locked --features dynostore,libsql
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_test_broker() {
  if [ -n "${STRANGLER_TEST_KAFKA:-}" ]; then return; fi
  local port; port=$(free_port)
  local logfile; logfile=$(mktemp -t tansu.XXXXXX.log)
  "$(tansu_bin)" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$logfile" 2>&1 &
  TANSU_PID=$!
  trap 'kill $TANSU_PID 2>/dev/null || true' EXIT
  export STRANGLER_TEST_KAFKA="127.0.0.1:$port"
  if ! wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"; then
    echo "tansu did not start; its log:" >&2; cat "$logfile" >&2; exit 1
  fi
  log "tansu broker on $STRANGLER_TEST_KAFKA (log: $logfile)"
}
