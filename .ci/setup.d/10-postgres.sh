# PostgreSQL for the suite's second store: install if missing, start a throwaway cluster on loopback (or reuse
# the one already answering on the port), and export GATEWAY_TEST_POSTGRES_URL for the tests.
PG_PORT=55432
PG_DIR=/tmp/gateway-ci-pg
export GATEWAY_TEST_POSTGRES_URL="postgresql+asyncpg://gateway@127.0.0.1:$PG_PORT/postgres"
ensure_packages postgresql postgresql-contrib
PG_BIN=$(dirname "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)")
if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null \
   || { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }; then
  echo "PostgreSQL already running on port $PG_PORT"
else
  id gateway-pg >/dev/null 2>&1 || useradd --system --no-create-home gateway-pg
  rm -rf "$PG_DIR" && mkdir -p "$PG_DIR" && chown gateway-pg "$PG_DIR"
  su gateway-pg -s /bin/sh -c "$PG_BIN/initdb -D $PG_DIR/data -U gateway --auth=trust -E UTF8 >/dev/null"
  su gateway-pg -s /bin/sh -c "$PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/log -w -o '-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DIR -c max_connections=500' start >/dev/null"
fi
