#!/usr/bin/env bash
# Installs the Debian packages headless MuJoCo rendering needs, only when they are missing:
# EGL with Mesa (the fast path on a CPU) and OSMesa as the fallback.
set -eu
pkgs="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libopengl0 libosmesa6"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "slac setup: missing rendering libraries:$missing; install them with your package manager" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "slac setup: installing rendering libraries:$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
