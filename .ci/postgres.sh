#!/usr/bin/env bash
# Start a private PostgreSQL cluster for the tests against `mlflow server` +
# PostgreSQL, and print the SQLAlchemy URI of its empty `mlflow` database.
#
#   export MLEXP_TEST_POSTGRES_URI="$(bash .ci/postgres.sh /tmp/mlexp-pg)"
#
# Installs PostgreSQL from the distribution's packages when it is missing.
# The cluster runs as the `postgres` user in DIR, on a free port of 127.0.0.1;
# stop it with: su postgres -c "pg_ctl -D DIR/data stop"
set -euo pipefail
dir="${1:-/tmp/mlexp-pg}"

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bindir" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -rf "$dir" && mkdir -p "$dir" && chown postgres "$dir"
as_postgres() { su postgres -s /bin/sh -c "$*"; }
as_postgres "'$bindir/initdb' -D '$dir/data' -U postgres -A trust -E UTF8 >'$dir/initdb.log'"
as_postgres "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w \
    -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off\" start" >&2
as_postgres "'$bindir/createdb' -h 127.0.0.1 -p $port -U postgres mlflow"
echo "postgresql+psycopg://postgres@127.0.0.1:$port/mlflow"
