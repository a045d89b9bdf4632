#!/bin/bash
# mmdebstrap --customize-hook for the Endcap dev image: $1 is the new root. Runs on the build host as
# root, after the packages are installed. Inputs come from the environment set by endcap_image.build:
#   ENDCAP_OVERLAYS (space-separated dirs, applied in order), ENDCAP_WHEELS (dir), ENDCAP_VENV,
#   ENDCAP_RAUC_CONF, ENDCAP_KEYRING, ENDCAP_CLIP, ENDCAP_DOC, ENDCAP_HOSTNAME, ENDCAP_UNITS (to enable),
#   ENDCAP_VERSION (firmware version written to /etc/endcap/version).
set -euo pipefail
root="$1"
say() { echo "[customize] $*"; }

for o in $ENDCAP_OVERLAYS; do
  say "overlay $o"
  cp -a --no-preserve=ownership "$o"/. "$root"/
done

# The maintenance page writes the store LAN's .network file on the data partition (the rootfs is
# read-only); networkd reads /etc/systemd/network, so that becomes a link to it (docs/image.md).
# rmdir, not rm -rf: a file an overlay or package put there fails the build instead of vanishing.
say "/etc/systemd/network -> /var/lib/endcap/network"
if [ -d "$root/etc/systemd/network" ] && [ ! -L "$root/etc/systemd/network" ]; then
  rmdir "$root/etc/systemd/network"
fi
ln -sfn /var/lib/endcap/network "$root/etc/systemd/network"

say "rauc system.conf + keyring"
install -D -m 0644 "$ENDCAP_RAUC_CONF" "$root/etc/rauc/system.conf"
install -D -m 0644 "$ENDCAP_KEYRING" "$root/etc/rauc/keyring.pem"

say "python venv at $ENDCAP_VENV (system site packages: python3-gi, python3-pydbus)"
chroot "$root" python3 -m venv --system-site-packages "$ENDCAP_VENV"
mkdir -p "$root/tmp/endcap-wheels"
cp "$ENDCAP_WHEELS"/*.whl "$root/tmp/endcap-wheels/"
# the glob must expand inside the new root
chroot "$root" /bin/sh -c "'$ENDCAP_VENV/bin/pip' install --no-index --no-deps --no-cache-dir --disable-pip-version-check -q /tmp/endcap-wheels/*.whl"
rm -rf "$root/tmp/endcap-wheels"
ln -sf "$ENDCAP_VENV/bin/endcap" "$root/usr/bin/endcap"
chroot "$root" "$ENDCAP_VENV/bin/python3" -c "import endcap.gateway, endcap.cli, cv2, numpy, tpm2_pytss, pydbus, gi; print('imports ok')"

say "camera clip, docs, version"
install -D -m 0644 "$ENDCAP_CLIP" "$root/usr/share/endcap/clips/aisle.avi"
install -D -m 0644 "$ENDCAP_DOC" "$root/usr/share/doc/endcap/image.md"
printf '%s\n' "$ENDCAP_VERSION" > "$root/etc/endcap/version"
echo "$ENDCAP_HOSTNAME" > "$root/etc/hostname"

say "users (sysusers at build time: /etc is read-only on the device)"
chroot "$root" systemd-sysusers

say "enable units: $ENDCAP_UNITS"
chroot "$root" systemctl enable $ENDCAP_UNITS systemd-networkd.service
# The updater marks good only after its health gate: nothing may mark a slot good unconditionally.
for u in rauc-mark-good.service; do
  if [ -e "$root/lib/systemd/system/$u" ] || [ -e "$root/usr/lib/systemd/system/$u" ]; then
    say "mask $u"; chroot "$root" systemctl mask "$u"
  fi
done

say "tmpfiles at build time for the rootfs (at boot it is read-only: everything must already be right)"
chroot "$root" systemd-tmpfiles --create --remove -E \
  --exclude-prefix=/run --exclude-prefix=/tmp --exclude-prefix=/var/tmp --exclude-prefix=/var/log \
  --exclude-prefix=/var/lib/systemd --exclude-prefix=/data --exclude-prefix=/var/lib/endcap || true
echo 'LANG=C.UTF-8' > "$root/etc/default/locale"

say "read-only rootfs: mount points, empty machine-id (systemd makes a transient one)"
mkdir -p "$root/data" "$root/boot/efi" "$root/var/lib/endcap"
: > "$root/etc/machine-id"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"* "$root/var/log/"*
test -e "$root/vmlinuz" && test -e "$root/initrd.img" || { echo "no /vmlinuz or /initrd.img in the rootfs" >&2; exit 1; }
say "done"
