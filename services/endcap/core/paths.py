"""Every filesystem location derives from one root, so whole services run inside a temp tree.

On the device the root is ``/``: config in ``/etc/endcap``, sockets in ``/run/endcap``, state on the
data partition under ``/var/lib/endcap`` (kept across A/B updates; the rootfs is read-only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def under(cls, root: str | Path) -> "Paths":
        return cls(Path(root).resolve())

    @property
    def config_dir(self) -> Path:
        return self.root / "etc" / "endcap"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "endcap.toml"

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / "endcap"

    @property
    def state_dir(self) -> Path:
        return self.root / "var" / "lib" / "endcap"

    def service_state(self, service: str) -> Path:
        return self.state_dir / service

    def pub_address(self, service: str) -> str:
        """The pub/sub socket a service publishes on: ``ipc:///run/endcap/<svc>.pub``."""
        return f"ipc://{self.run_dir / service}.pub"

    def rpc_address(self, service: str) -> str:
        """The req/rep socket a service answers on: ``ipc:///run/endcap/<svc>.rpc``."""
        return f"ipc://{self.run_dir / service}.rpc"

    def ensure(self) -> None:
        for d in (self.run_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
