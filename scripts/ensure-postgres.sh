#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 for user postgres without a password (trust auth,
# as on the project's machines): starts the installed cluster where stopped, installs Debian's
# postgresql where absent. Used by .ci/run; safe to run by hand. Tests create databases of their own.
set -euo pipefail
HOST=127.0.0.1
PORT=5432
ready() { psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc 'SELECT version()' 2>/dev/null; }

if command -v psql >/dev/null && version="$(ready)"; then
  echo "postgres: running (${version%% on *})"
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null; then
  echo "postgres: not installed; installing Debian's postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
cluster="$(pg_lsclusters -h | awk '$3 == '"$PORT"' { print $1 " " $2; exit }')"
if [[ -z "$cluster" ]]; then
  echo "postgres: no cluster on port $PORT (pg_lsclusters); create one with pg_createcluster <version> main --start" >&2
  exit 1
fi
echo "postgres: starting cluster $cluster"
pg_ctlcluster $cluster start || true
for _ in $(seq 1 50); do
  if version="$(ready)"; then echo "postgres: running (${version%% on *})"; exit 0; fi
  sleep 0.2
done
echo "postgres: cluster $cluster does not answer on $HOST:$PORT as user postgres without a password." >&2
echo "  Check /var/log/postgresql/ and that pg_hba.conf trusts local TCP connections (host all all 127.0.0.1/32 trust)." >&2
exit 1
