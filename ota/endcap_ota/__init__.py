"""NOC-side OTA tools: fleet PKI, RAUC bundles, the TUF fleet repository and the ``endcap-ota`` CLI.

Never installed on a gateway: it holds signing logic and reads private keys.
"""
