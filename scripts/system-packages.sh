#!/usr/bin/env bash
# Install the system libraries a real napari viewer needs on a headless Debian/Ubuntu machine:
# a virtual X display (Xvfb) and Mesa's software OpenGL, plus the X/xcb libraries Qt loads.
# Extra package names given as arguments are installed too (quickstart passes python3-venv).
# Waits (up to 10 minutes) while another process holds apt's or dpkg's lock, as happens right
# after a cloud machine boots and runs its own updates.
set -euo pipefail
packages=(
  xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libdbus-1-3 libfontconfig1
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1 libxi6 libxrender1
  "$@"
)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# apt-get, retried while another process holds a package-manager lock (apt-get update does not
# wait for its lists lock by itself; DPkg::Lock::Timeout covers the dpkg lock of installs).
apt_get() {
  local deadline=$((SECONDS + ${APT_LOCK_WAIT_SECONDS:-600})) errors said=""
  errors=$(mktemp)
  until $sudo apt-get -o DPkg::Lock::Timeout=60 "$@" 2>"$errors"; do
    if grep -q -e 'Could not get lock' -e 'Unable to lock' -e 'Unable to acquire' "$errors" \
      && ((SECONDS < deadline)); then
      [ -n "$said" ] || echo "system-packages: another process is using apt; waiting for it..." >&2
      said=yes
      sleep 3
    else
      cat "$errors" >&2
      rm -f "$errors"
      return 1
    fi
  done
  grep -v -e 'Could not get lock' -e 'Unable to lock' -e 'Unable to acquire' "$errors" >&2 || true
  rm -f "$errors"
}

[ "${SYSTEM_PACKAGES_SOURCE_ONLY:-}" = 1 ] && return 0 2>/dev/null

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
fi
