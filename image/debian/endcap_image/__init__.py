"""Builds, bundles and boots the Endcap Debian dev image (QEMU). See docs/image.md."""
