#!/usr/bin/env bash
# Installs what the test suite needs when it is missing: a D-Bus daemon (the
# fake logind and tray tests run on private buses), iproute2 (network
# namespaces for the network-watch tests), Chromium (the dashboard test),
# systemd's analyzer (unit checks), dpkg-deb (the package test), supervisor
# and pm2 (the side-by-side benchmark; pm2 from npm), docker.io, podman and
# busybox-static (a private dockerd, a private Podman API service and a
# locally built image for the container kind), sway, waybar and grim (the
# tray in a real panel, tests/panel), systemd, dbus, polkitd,
# libpam-systemd and curl (the real-systemd suite, tests/system). Debian
# packages and npm; needs root or sudo.
set -euo pipefail

need=()
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus-daemon)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v supervisord >/dev/null 2>&1 || need+=(supervisor)
# The real-systemd suite (tests/system): systemd and logind booted in
# namespaces, the system bus, polkit (a user's delay lock), PAM for the
# user manager, curl and ps inside the machine.
[ -x /lib/systemd/systemd-logind ] || need+=(systemd)
[ -e /lib/systemd/system/dbus.service ] || need+=(dbus)
[ -x /usr/lib/polkit-1/polkitd ] || need+=(polkitd)
dpkg -s libpam-systemd >/dev/null 2>&1 || need+=(libpam-systemd)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
# The tray in a real panel (tests/panel): a headless Wayland compositor,
# waybar's StatusNotifier host, and a screenshot tool.
command -v sway >/dev/null 2>&1 || need+=(sway)
command -v waybar >/dev/null 2>&1 || need+=(waybar)
command -v grim >/dev/null 2>&1 || need+=(grim)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v podman >/dev/null 2>&1 || need+=(podman)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v pm2 >/dev/null 2>&1 || command -v npm >/dev/null 2>&1 || need+=(npm)

sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v pm2 >/dev/null 2>&1; then
  echo "installing test dependencies: pm2 (npm)"
  $sudo npm install -g --silent pm2 >/dev/null
fi
