#!/usr/bin/env bash
# Make a PostgreSQL 15 server answer on 127.0.0.1:5432 with a login role for the tests:
# install Debian's postgresql if missing, create the cluster if there is none, start it if
# it is down (pg_ctlcluster, no systemd), then create the role and database `djmw`
# (password `djmw`, CREATEDB) if missing. Idempotent: exits at once when all is in place.
set -euo pipefail

VERSION=15
CLUSTER=main
ROLE=djmw
PASSWORD=djmw

answers() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}

role_ready() {
  PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -p 5432 -U "$ROLE" -d "$ROLE" -Atqc 'SELECT 1' \
    >/dev/null 2>&1
}

if answers && role_ready; then
  exit 0
fi

if [ ! -x "/usr/lib/postgresql/$VERSION/bin/postgres" ]; then
  echo "setup_postgresql: installing postgresql (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
  echo "setup_postgresql: creating cluster $VERSION/$CLUSTER"
  pg_createcluster "$VERSION" "$CLUSTER" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi

# Listen on loopback only; enough connections for 4 worker processes, Ruby and the tests.
conf="/etc/postgresql/$VERSION/$CLUSTER/conf.d/djmw.conf"
if [ ! -f "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  printf "listen_addresses = '127.0.0.1'\nport = 5432\nmax_connections = 200\n" >"$conf"
fi

if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}' \
    | grep -q online; then
  mkdir -p /var/run/postgresql
  chown postgres:postgres /var/run/postgresql
  pg_ctlcluster "$VERSION" "$CLUSTER" start
fi

for _ in $(seq 1 60); do
  if answers; then break; fi
  sleep 0.5
done
if ! answers; then
  echo "PostgreSQL did not answer on 127.0.0.1:5432" >&2
  exit 1
fi

su postgres -c "psql -v ON_ERROR_STOP=1 -q" <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL
if ! su postgres -c "psql -Atqc \"SELECT 1 FROM pg_database WHERE datname = '$ROLE'\"" | grep -q 1; then
  su postgres -c "createdb -O $ROLE $ROLE"
fi

if role_ready; then
  exit 0
fi
echo "PostgreSQL role $ROLE cannot log in on 127.0.0.1:5432" >&2
exit 1
