#!/bin/sh
# Installs the Debian packages given as arguments that are not installed yet.
# As root: apt-get update once, then apt-get install. Otherwise: print the
# exact command to run and fail.
set -u
missing=
for p in "$@"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
  case "$st" in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || { echo "deps: apt-get update failed" >&2; exit 1; }
  # shellcheck disable=SC2086
  # Daemons (openbsd-inetd, nginx...) are installed for tests that start
  # them in a lab: no service is started on the host while installing.
  made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d &&
      chmod 755 /usr/sbin/policy-rc.d && made=1
  fi
  apt-get install -y -q --no-install-recommends $missing
  rc=$?
  [ -n "$made" ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || exit 1
else
  echo "deps: missing packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
