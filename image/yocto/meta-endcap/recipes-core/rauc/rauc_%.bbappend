# Endcap: the updater marks a slot good only after the health gate, never at boot.
# Inert unless DISTRO_FEATURES contains "endcap".
require ${@bb.utils.contains('DISTRO_FEATURES', 'endcap', 'rauc-endcap.inc', '', d)}
