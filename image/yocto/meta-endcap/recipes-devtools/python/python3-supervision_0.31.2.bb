SUMMARY = "Computer-vision utilities used by trackers"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "supervision: the Detections type that trackers (ByteTrack) works on."
HOMEPAGE = "https://github.com/roboflow/supervision"
BUGTRACKER = "https://github.com/roboflow/supervision/issues"
SECTION = "devel/python"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE.md;md5=dd7ee839276061e594b873de7c548463"

SRC_URI[sha256sum] = "2065a4cb7409f137509e213aa2fbf6af76bf195e4670b8984245c44d00721f89"

CVE_PRODUCT = "supervision"

inherit pypi python_setuptools_build_meta

# Only what the tracker path imports: the sdist also lists av and pydeprecate (video I/O and
# deprecation helpers) that the device never uses and scarthgap does not package.
RDEPENDS:${PN} += "python3-core python3-defusedxml python3-matplotlib python3-numpy python3-pillow python3-pyyaml python3-requests python3-scipy python3-tqdm"

BBCLASSEXTEND = "native nativesdk"
