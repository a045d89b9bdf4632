# nooelint: oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT
# (suppressed: no bug tracker yet, the project ships with its repository; an image has no upstream
# product for CVE matching.)
SUMMARY = "Endcap gateway firmware image for Jetson Orin"
DESCRIPTION = "Read-only rootfs for one A/B slot (APP/APP_b): systemd, the Endcap services, RAUC. State lives on /data."
SECTION = "base"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "endcap rauc systemd"
COMPATIBLE_MACHINE = "(tegra)"

IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-endcap \
                 ${CORE_IMAGE_EXTRA_INSTALL}"

# No rauc-mark-good: a slot is marked good by the updater after the health gate, never at boot.
BAD_RECOMMENDATIONS += "rauc-mark-good"
PACKAGE_EXCLUDE += "rauc-mark-good"

# State lives on /data (the UDA partition); the rootfs is mounted read-only. Set here, not in the distro,
# so helper images (meta-tegra's initrd-flash initramfs) are left as they are.
IMAGE_FEATURES += "read-only-rootfs"

IMAGE_LINGUAS = ""
