SUMMARY = "Cryptographic routines used by TUF"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "securesystemslib: signers and key handling for python-tuf."
HOMEPAGE = "https://github.com/secure-systems-lab/securesystemslib"
BUGTRACKER = "https://github.com/secure-systems-lab/securesystemslib/issues"
SECTION = "devel/python"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=e9703d169911cdb29305f88411c78717"

SRC_URI[sha256sum] = "b16e07c32bb41174c2ee2fb18f478ebe0d52e0e7c1fb085ce89c990452a35977"

CVE_PRODUCT = "securesystemslib"

inherit pypi python_hatchling

# The sdist pins hatchling==1.32.4; the scarthgap hatchling builds it.
do_configure:prepend() {
    sed -i -e 's/"hatchling==[0-9.]*"/"hatchling"/' ${S}/pyproject.toml
}

# A vendored upstream test script would pull bash into the image.
do_install:append() {
    rm -f ${D}${PYTHON_SITEPACKAGES_DIR}/securesystemslib/_vendor/test-ed25519-upstream.sh
}

RDEPENDS:${PN} += "python3-core python3-cryptography python3-json"

BBCLASSEXTEND = "native nativesdk"
