# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.bbclassextend
# (suppressed: no public home page or bug tracker yet, the project ships with its repository; the
# services are device-only, so there is no native variant to extend to.)
SUMMARY = "Endcap gateway services, one package per service"
# The device runtime (import endcap) from this repository's services/ folder only: NOC, staging and
# data-science tools, the store simulator and the dev launcher never enter the image.
DESCRIPTION = "The Endcap device runtime, split into endcap-core and one package per service."
SECTION = "devel/python"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# One commit of the repository is one image: the sources come from the checkout holding this layer
# (ENDCAP_SRC_DIR, layer.conf), not from a download.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${ENDCAP_SRC_DIR}:"
SRC_URI = "file://pyproject.toml \
           file://README.md \
           file://LICENSE \
           file://services/"

S = "${WORKDIR}"

CVE_PRODUCT = "endcap"

inherit features_check python_setuptools_build_meta

REQUIRED_DISTRO_FEATURES = "endcap"

# Dev-only code (DESIGN §3): the simulator, the all-in-one launcher, and the console scripts of the
# NOC/staging/data-science tools, whose packages are not fetched at all.
do_install:append() {
    rm -rf ${D}${PYTHON_SITEPACKAGES_DIR}/endcap/sim
    rm -f ${D}${PYTHON_SITEPACKAGES_DIR}/endcap/devrun.py ${D}${PYTHON_SITEPACKAGES_DIR}/endcap/launcher.py
    rm -f ${D}${bindir}/endcap-model ${D}${bindir}/endcap-ota
}

PACKAGES =+ "${PN}-core \
             ${PN}-maint \
             ${PN}-offers \
             ${PN}-pos \
             ${PN}-signage \
             ${PN}-trust \
             ${PN}-updater \
             ${PN}-vision"

# The main package only gathers the split ones.
# nooelint: oelint.var.filesoverride
FILES:${PN} = ""
FILES:${PN}-core += "${bindir}/endcap \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap-*.dist-info \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/__init__.py \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/__pycache__ \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/cli.py \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/core \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/defaults \
                     ${PYTHON_SITEPACKAGES_DIR}/endcap/gateway.py"
FILES:${PN}-maint += "${PYTHON_SITEPACKAGES_DIR}/endcap/maint"
FILES:${PN}-offers += "${PYTHON_SITEPACKAGES_DIR}/endcap/offers"
FILES:${PN}-pos += "${PYTHON_SITEPACKAGES_DIR}/endcap/pos"
FILES:${PN}-signage += "${PYTHON_SITEPACKAGES_DIR}/endcap/signage"
FILES:${PN}-trust += "${PYTHON_SITEPACKAGES_DIR}/endcap/trust"
FILES:${PN}-updater += "${PYTHON_SITEPACKAGES_DIR}/endcap/updater"
FILES:${PN}-vision += "${PYTHON_SITEPACKAGES_DIR}/endcap/vision"

RDEPENDS:${PN} = "${PN}-core \
                  ${PN}-maint \
                  ${PN}-offers \
                  ${PN}-pos \
                  ${PN}-signage \
                  ${PN}-trust \
                  ${PN}-updater \
                  ${PN}-vision"
RDEPENDS:${PN}-core = "python3-core \
                       python3-json \
                       python3-logging \
                       python3-msgspec \
                       python3-pynng \
                       python3-sqlite3 \
                       python3-threading \
                       python3-tomllib"
RDEPENDS:${PN}-maint = "${PN}-core \
                        python3-cryptography \
                        python3-flask \
                        python3-pydbus \
                        python3-pygobject \
                        python3-waitress"
RDEPENDS:${PN}-offers = "${PN}-core python3-numpy"
RDEPENDS:${PN}-pos = "${PN}-core python3-requests"
RDEPENDS:${PN}-signage = "${PN}-core python3-flask python3-waitress"
RDEPENDS:${PN}-trust = "${PN}-core libtss2-tcti-device python3-cryptography python3-tpm2-pytss"
RDEPENDS:${PN}-updater = "${PN}-core python3-pydbus python3-pygobject python3-requests python3-tuf rauc squashfs-tools"
# The only package that pulls the Jetson inference stack (detectNet, jetson_utils.videoSource):
# ENDCAP_VISION_ACCEL defaults to jetson-inference (conf/distro/endcap.conf, docs/yocto.md).
RDEPENDS:${PN}-vision = "${ENDCAP_VISION_ACCEL} \
                         ${PN}-core \
                         python3-numpy \
                         python3-opencv \
                         python3-trackers"

# psycopg only where the store's POS is PostgreSQL; SQLite and REST POS links need nothing more.
RRECOMMENDS:${PN}-pos = "python3-psycopg"
