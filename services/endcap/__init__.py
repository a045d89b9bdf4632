"""Endcap gateway runtime: the services that run on the in-store box.

Only ``endcap.core`` is shared between services; a service never imports another
service's internals. Nothing here does work at import time.
"""
