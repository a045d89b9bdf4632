"""The composition root: which services exist, their config sections, and the whole config schema.

This is the one module that names every service; services themselves never import each other.
Service modules are imported lazily, when that service is run.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

import msgspec

from .core.config import Strict


class CoreConfig(Strict):
    log_level: str = "INFO"
    """Python logging level for every service: DEBUG, INFO, WARNING or ERROR."""

    def __post_init__(self) -> None:
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"log_level {self.log_level!r} is not DEBUG, INFO, WARNING or ERROR")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    config: str  # "module:Class"
    main: str  # "module:function"

    def config_type(self) -> type:
        return _resolve(self.config)

    def main_function(self) -> Callable[[Any], None]:
        return _resolve(self.main)


SERVICES: dict[str, ServiceSpec] = {
    "pos": ServiceSpec("pos", "endcap.pos.config:PosConfig", "endcap.pos.service:main"),
    "vision": ServiceSpec("vision", "endcap.vision.config:VisionConfig", "endcap.vision.service:main"),
    "offers": ServiceSpec("offers", "endcap.offers.config:OffersConfig", "endcap.offers.service:main"),
    "signage": ServiceSpec("signage", "endcap.signage.config:SignageConfig", "endcap.signage.service:main"),
    "trust": ServiceSpec("trust", "endcap.trust.config:TrustConfig", "endcap.trust.service:main"),
    "updater": ServiceSpec("updater", "endcap.updater.config:UpdaterConfig", "endcap.updater.service:main"),
    "maint": ServiceSpec("maint", "endcap.maint.config:MaintConfig", "endcap.maint.service:main"),
}


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def config_schema() -> type:
    """``[core]`` plus one optional section per service (a service refuses to start without its own)."""
    fields: list[tuple[str, Any, Any]] = [("core", CoreConfig, msgspec.field(default_factory=CoreConfig))]
    for spec in SERVICES.values():
        fields.append((spec.name, Optional[spec.config_type()], None))
    return msgspec.defstruct("GatewayConfig", fields, forbid_unknown_fields=True, frozen=True, kw_only=True)
