#!/usr/bin/env bash
# Install Ruby's delayed_job stack from Debian's packages, for the Ruby interop tests.
# Idempotent: exits at once when everything is already installed; runs `apt-get update`
# only when a package is missing and apt does not know it yet. Packages that Debian does
# not have are skipped with a note.
set -euo pipefail

PACKAGES=(
  ruby
  ruby-delayed-job
  ruby-delayed-job-active-record
  ruby-activerecord
  ruby-mysql2
  ruby-pg
  ruby-sqlite3
  ruby-globalid
  ruby-activejob
  ruby-actionmailer
)

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

known() {
  apt-cache show --no-all-versions "$1" >/dev/null 2>&1
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup_ruby: all Ruby packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
else
  SUDO=()
fi

updated=0
for pkg in "${missing[@]}"; do
  if ! known "$pkg"; then
    echo "setup_ruby: apt-get update (apt does not know $pkg yet)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    updated=1
    break
  fi
done

to_install=()
for pkg in "${missing[@]}"; do
  if known "$pkg"; then
    to_install+=("$pkg")
  else
    echo "setup_ruby: Debian has no package $pkg; skipped" >&2
  fi
done

if [ "${#to_install[@]}" -gt 0 ]; then
  echo "setup_ruby: installing ${to_install[*]}"
  if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${to_install[@]}"; then
    if [ "$updated" -eq 0 ]; then
      # Stale package lists (e.g. a security update replaced a version): refresh once.
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${to_install[@]}"
    else
      exit 1
    fi
  fi
fi
echo "setup_ruby: done"
