# Endcap: the Jetson system.conf and the fleet keyring. Inert unless DISTRO_FEATURES contains "endcap".
require ${@bb.utils.contains('DISTRO_FEATURES', 'endcap', 'rauc-conf-endcap.inc', '', d)}
