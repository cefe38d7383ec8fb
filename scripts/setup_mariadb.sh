#!/usr/bin/env bash
# Make a MariaDB server answer on 127.0.0.1:3306 as root without a password:
# install Debian's mariadb-server if missing, start it if not running, allow root over TCP.
set -euo pipefail

answers() { mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; }

if command -v mariadb-admin >/dev/null 2>&1 && answers; then
  exit 0
fi

if [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing mariadb-server (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mariadb-server >/dev/null
fi

mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid \
  --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid \
  --bind-address=127.0.0.1 --port=3306 --max-connections=500

for _ in $(seq 1 60); do
  if mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; then break; fi
  sleep 0.5
done

mariadb --protocol=socket -uroot <<'SQL'
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL

for _ in $(seq 1 20); do
  if answers; then exit 0; fi
  sleep 0.5
done
echo "MariaDB did not answer on 127.0.0.1:3306" >&2
exit 1
