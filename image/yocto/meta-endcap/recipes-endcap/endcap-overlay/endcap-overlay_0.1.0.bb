# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend
# (suppressed: no public home page or bug tracker yet, the project ships with its repository; configuration
# files only, no upstream product for CVE matching; device-only, no native variant.)
SUMMARY = "Endcap rootfs files: units, tmpfiles, D-Bus policy, /etc/endcap"
DESCRIPTION = "Installs this repository's overlay/ (the one source of rootfs files for both image tracks) and the service users."
SECTION = "base"
LICENSE = "Apache-2.0"
# The repository has no LICENSE file yet (pyproject.toml declares Apache-2.0): the common licence text.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# overlay/ of the checkout holding this layer (ENDCAP_SRC_DIR, layer.conf) plus the Jetson data.mount drop-in.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${ENDCAP_SRC_DIR}:${THISDIR}/files:"
SRC_URI = "file://overlay/ \
           file://10-jetson-uda.conf"

S = "${WORKDIR}/overlay"

inherit allarch features_check systemd useradd

REQUIRED_DISTRO_FEATURES = "endcap systemd"

# The rootfs is read-only, so systemd-sysusers cannot add users at boot: the users of
# overlay/usr/lib/sysusers.d/endcap.conf are created at build time instead (same names, groups, homes).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system endcap"
USERADD_PARAM:${PN} = "--system --no-create-home --shell /sbin/nologin --gid endcap --home-dir ${localstatedir}/lib/endcap/pos endcap-pos; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --groups video --home-dir ${localstatedir}/lib/endcap/vision endcap-vision; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --home-dir ${localstatedir}/lib/endcap/offers endcap-offers; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --home-dir ${localstatedir}/lib/endcap/signage endcap-signage; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --groups tss --home-dir ${localstatedir}/lib/endcap/trust endcap-trust; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --groups tss --home-dir ${localstatedir}/lib/endcap/updater endcap-updater; \
                       --system --no-create-home --shell /sbin/nologin --gid endcap --groups systemd-journal --home-dir ${localstatedir}/lib/endcap/maint endcap-maint"
# tss comes from tpm2-tss, systemd-journal from systemd, video from base-passwd.
USERADD_DEPENDS = "systemd tpm2-tss"

do_install() {
    cp -R --no-dereference --preserve=mode,links ${S}/. ${D}/
    # GRUB's ESP mount belongs to the dev image (x86_64 UEFI + GRUB); Jetson boots through L4TLauncher.
    rm -f ${D}${systemd_system_unitdir}/boot-efi.mount
    install -d ${D}${systemd_system_unitdir}/data.mount.d
    install -m 0644 ${WORKDIR}/10-jetson-uda.conf ${D}${systemd_system_unitdir}/data.mount.d/
    # The overlay's helpers start with the dev image's interpreter path; on Yocto it is the system one.
    install -d ${D}/opt/endcap/bin
    ln -sf ${bindir}/python3 ${D}/opt/endcap/bin/python3
}

SYSTEMD_SERVICE:${PN} = "data.mount \
                         endcap-maint.service \
                         endcap-offers.service \
                         endcap-pos.service \
                         endcap-signage.service \
                         endcap-trust.service \
                         endcap-updater.service \
                         endcap-vision.service \
                         tmp.mount \
                         var-lib-endcap.mount \
                         var-lib-systemd.mount \
                         var-log.mount \
                         var-tmp.mount"
SYSTEMD_AUTO_ENABLE = "enable"

FILES:${PN} += "/opt/endcap \
                ${libexecdir}/endcap \
                ${nonarch_libdir}/sysusers.d \
                ${nonarch_libdir}/tmpfiles.d \
                ${systemd_unitdir}"

RDEPENDS:${PN} = "python3-core"
