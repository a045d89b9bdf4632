SUMMARY = "Multi-object trackers (ByteTrack) for the vision service"
# Not in meta-python scarthgap; pinned to the version the project tests against (pyproject.toml).
DESCRIPTION = "trackers: ByteTrack over supervision Detections; vision re-links fragmented tracks per zone on top."
HOMEPAGE = "https://github.com/roboflow/trackers"
BUGTRACKER = "https://github.com/roboflow/trackers/issues"
SECTION = "devel/python"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=86d3f3a95c324c9479bd8986968f4327"

SRC_URI[sha256sum] = "101f75852e66e02b7d13fa0ecf664a9487703295e928054d61626dc0365dc52c"

CVE_PRODUCT = "trackers"

inherit pypi python_hatchling

RDEPENDS:${PN} += "python3-core python3-numpy python3-scipy python3-supervision"

BBCLASSEXTEND = "native nativesdk"
