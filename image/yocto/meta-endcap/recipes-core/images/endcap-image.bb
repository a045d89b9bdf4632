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

# networkd reads /etc/systemd/network; the maintenance page writes the store LAN's .network file on the
# data partition (the rootfs is read-only), so /etc/systemd/network becomes a link to that folder, as in
# the Debian image's customize.sh (docs/image.md). rmdir, not rm -rf: a file a package put there fails
# the build instead of vanishing.
ROOTFS_POSTPROCESS_COMMAND += "endcap_networkd_link"

endcap_networkd_link[doc] = "Makes /etc/systemd/network a link to /var/lib/endcap/network (the data partition)"

endcap_networkd_link() {
    if [ -d ${IMAGE_ROOTFS}${sysconfdir}/systemd/network ] && [ ! -L ${IMAGE_ROOTFS}${sysconfdir}/systemd/network ]; then
        rmdir ${IMAGE_ROOTFS}${sysconfdir}/systemd/network
    fi
    ln -sfn ${localstatedir}/lib/endcap/network ${IMAGE_ROOTFS}${sysconfdir}/systemd/network
}
