#!/bin/sh
# bench/peer.sh runs `clinicmsg bench --peer`: clinicmsg side by side with Kannel (Debian's
# kannel, and kannel-extras for fakesmsc). Run as root, it installs them when missing;
# otherwise it says so and exits 0. BIN is the clinicmsg binary (default ./clinicmsg);
# arguments are passed on, e.g. bench/peer.sh --peer-messages 2000 --json.
set -eu

BIN=${BIN:-./clinicmsg}

if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/sbin/smsbox ] || [ ! -x /usr/lib/kannel/test/fakesmsc ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "Kannel is not installed; run as root to install it, or apt-get install kannel"
		exit 0
	fi
	echo "peer.sh: installing Debian's kannel and kannel-extras (fakesmsc)" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras >/dev/null
fi

exec "$BIN" bench --peer "$@"
