# Endcap: what RAUC's verity bundles and the read-only rootfs need from the kernel.
# Inert unless DISTRO_FEATURES contains "endcap".
require ${@bb.utils.contains('DISTRO_FEATURES', 'endcap', 'linux-endcap.inc', '', d)}
