SUMMARY = "Fast serialization and validation library"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "msgspec: typed structs with strict decoding; Endcap's bus envelopes and configs are msgspec structs."
HOMEPAGE = "https://jcristharif.com/msgspec/"
BUGTRACKER = "https://github.com/jcrist/msgspec/issues"
SECTION = "devel/python"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=c21402f8022478021f697044388b97c4"

SRC_URI[sha256sum] = "0a13624a4969159fe35d8c2a3d377b2b61bbd8585e327440d5e52725affcce38"

CVE_PRODUCT = "msgspec"

inherit pypi python_setuptools_build_meta

DEPENDS += "python3-setuptools-scm-native"

# The sdist asks for setuptools>=80 and setuptools-scm>=8; the scarthgap versions build it.
do_configure:prepend() {
    sed -i -e 's/"setuptools>=80"/"setuptools"/' -e 's/"setuptools-scm>=8"/"setuptools-scm"/' ${S}/pyproject.toml
}

RDEPENDS:${PN} += "python3-core python3-datetime python3-json"

BBCLASSEXTEND = "native nativesdk"
