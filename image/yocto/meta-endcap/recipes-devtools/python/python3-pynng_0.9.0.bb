SUMMARY = "Python bindings for NNG (nanomsg-next-gen)"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "pynng: the Endcap bus (pub/sub and req/rep over ipc://). The sdist vendors nng and mbedtls and builds them with CMake."
HOMEPAGE = "https://github.com/codypiersall/pynng"
BUGTRACKER = "https://github.com/codypiersall/pynng/issues"
SECTION = "devel/python"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE.txt;md5=57ac8de47c94532bc709cda1fe21c1a5"

SRC_URI[sha256sum] = "fcd839abf82a2934fa8c27ff57b574b41810458e35895bac6288814defa8fb4e"

CVE_PRODUCT = "pynng"

# cmake only for its cross toolchain file (a do_configure prefunc); the tasks are the Python build's.
inherit pypi cmake python_setuptools_build_meta

DEPENDS += "python3-cffi-native python3-setuptools-scm-native"

# setup.py runs `cmake` on the vendored nng/ and mbedtls/ trees: point it at the cross toolchain, and
# take CMake and setuptools from the build system rather than the sdist's pinned PyPI requirements.
do_configure:prepend() {
    sed -i -e 's|flags = \["-DCMAKE_POSITION_INDEPENDENT_CODE:BOOL=true"\]|flags = ["-DCMAKE_POSITION_INDEPENDENT_CODE:BOOL=true", "-DCMAKE_TOOLCHAIN_FILE=${WORKDIR}/toolchain.cmake"]|' ${S}/setup.py
    sed -i -e '/"cmake",/d' -e 's/"setuptools==[0-9.]*"/"setuptools"/' ${S}/pyproject.toml
}

RDEPENDS:${PN} += "python3-cffi python3-core python3-sniffio"

BBCLASSEXTEND = "native nativesdk"
