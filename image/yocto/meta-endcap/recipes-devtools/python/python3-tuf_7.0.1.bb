SUMMARY = "The Update Framework (python-tuf)"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "python-tuf ngclient: the updater fetches firmware bundles through TUF metadata."
HOMEPAGE = "https://theupdateframework.io/"
BUGTRACKER = "https://github.com/theupdateframework/python-tuf/issues"
SECTION = "devel/python"
LICENSE = "Apache-2.0 | MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=8cc789b082b3d97e1ccc5261f8594d3f \
                    file://LICENSE-MIT;md5=0905c600830081fce64622608c4a2628"

SRC_URI[sha256sum] = "5ada1db78da3518fa851e28588f4b2249b8662a28ae528f54afa2a1de541fb31"

CVE_PRODUCT = "python-tuf"

inherit pypi python_hatchling

# The sdist pins hatchling==1.32.0; the scarthgap hatchling builds it.
do_configure:prepend() {
    sed -i -e 's/"hatchling==[0-9.]*"/"hatchling"/' ${S}/pyproject.toml
}

RDEPENDS:${PN} += "python3-core python3-json python3-securesystemslib python3-urllib3"

BBCLASSEXTEND = "native nativesdk"
