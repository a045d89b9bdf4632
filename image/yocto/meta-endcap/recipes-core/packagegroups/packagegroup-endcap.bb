# nooelint: oelint.var.suggestedvar.BUGTRACKER
# (suppressed: no bug tracker yet, the project ships with its repository.)
SUMMARY = "Everything an Endcap gateway runs"
DESCRIPTION = "The Endcap services, their rootfs files, RAUC with the Orin boot backend, and the TPM stack."
SECTION = "base"
LICENSE = "MIT"

inherit features_check packagegroup

REQUIRED_DISTRO_FEATURES = "endcap rauc systemd"

RDEPENDS:${PN} = "e2fsprogs-mke2fs \
                  endcap-nvboot-backend \
                  endcap-overlay \
                  polkit \
                  python3-endcap \
                  rauc \
                  rauc-conf \
                  systemd-extra-utils \
                  tpm2-tools \
                  tpm2-tss"
