# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend
# (suppressed: no public home page or bug tracker yet, the project ships with its repository; no upstream
# product for CVE matching; device-only, no native variant.)
SUMMARY = "RAUC custom boot backend for Jetson Orin (nvbootctrl, UEFI slot status)"
DESCRIPTION = "bootloader=custom backend: get/set primary and good/bad state of the A/B rootfs slots on Jetson Linux R36 (docs/adr/0011-orin-boot-backend.md)."
SECTION = "base"
LICENSE = "Apache-2.0"
# The repository has no LICENSE file yet (pyproject.toml declares Apache-2.0): the common licence text.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# ota/rauc/jetson/ of the checkout holding this layer (ENDCAP_SRC_DIR, layer.conf).
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${ENDCAP_SRC_DIR}/ota/rauc/jetson:"
SRC_URI = "file://nvboot_backend.py \
           file://nvboot_state.py \
           file://nvboot.conf"

S = "${WORKDIR}"

inherit allarch features_check

REQUIRED_DISTRO_FEATURES = "endcap rauc"
COMPATIBLE_MACHINE = "(tegra)"

do_install() {
    install -d ${D}${nonarch_libdir}/endcap/rauc ${D}${sysconfdir}/endcap
    install -m 0644 ${S}/nvboot_state.py ${D}${nonarch_libdir}/endcap/rauc/
    install -m 0755 ${S}/nvboot_backend.py ${D}${nonarch_libdir}/endcap/rauc/
    ln -sf nvboot_backend.py ${D}${nonarch_libdir}/endcap/rauc/endcap-nvboot-backend
    install -m 0644 ${S}/nvboot.conf ${D}${sysconfdir}/endcap/nvboot.conf
}

FILES:${PN} += "${nonarch_libdir}/endcap/rauc"

# nvbootctrl: meta-tegra's tegra-redundant-boot (nvidia-l4t-bootloader-utils on R36).
RDEPENDS:${PN} = "python3-core tegra-redundant-boot"
