#!/usr/bin/env bash
# Make headless Chromium available for the dashboard's browser tests: install Debian's
# chromium package if /usr/bin/chromium is missing. Playwright drives this browser through
# its executable_path; no browser is ever downloaded by Playwright itself.
set -euo pipefail

if [ -x /usr/bin/chromium ] && /usr/bin/chromium --headless --version >/dev/null 2>&1; then
  exit 0
fi

echo "installing chromium (Debian package)"
export DEBIAN_FRONTEND=noninteractive
# Another apt run on the machine holds the lock for a while: wait for it instead of failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

/usr/bin/chromium --headless --version
