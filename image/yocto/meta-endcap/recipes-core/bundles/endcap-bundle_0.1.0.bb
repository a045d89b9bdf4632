# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend,oelint.var.mandatoryvar.SRC_URI
# (suppressed: no public home page or bug tracker yet, the project ships with its repository; a bundle
# has no upstream product for CVE matching, nothing to fetch (it packs endcap-image's deploy output)
# and no native variant.)
SUMMARY = "Signed RAUC bundle of endcap-image for the fleet"
DESCRIPTION = "A verity RAUC bundle with the rootfs of endcap-image, signed by the NOC's bundle signer."
SECTION = "base"
LICENSE = "MIT"

inherit bundle features_check

REQUIRED_DISTRO_FEATURES = "endcap rauc"
COMPATIBLE_MACHINE = "(tegra)"

RAUC_BUNDLE_COMPATIBLE = "${ENDCAP_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "Endcap ${DISTRO_VERSION} for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "endcap-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The signer's key and certificate come from the NOC's PKI on the build host (kas env); never committed.
RAUC_KEY_FILE = "${ENDCAP_RAUC_KEY_FILE}"
RAUC_CERT_FILE = "${ENDCAP_RAUC_CERT_FILE}"

# Skip with the reason when the signer is not configured, rather than fail in do_bundle.
# nooelint: oelint.task.noanonpython
python () {
    missing = [v for v in ('ENDCAP_RAUC_KEY_FILE', 'ENDCAP_RAUC_CERT_FILE') if not d.getVar(v)]
    if missing:
        raise bb.parse.SkipRecipe("%s not set: the bundle signer's key and certificate (docs/yocto.md)" % ' and '.join(missing))
}
