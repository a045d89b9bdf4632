"""A fleet TUF repository served over HTTP for updater tests: the NOC's FleetRepo on the static_http server.

``Fleet.publish`` builds a plain bundle with the NOC's ``build_bundle`` (signed by the device's test PKI)
and releases it to a ring; ``root_json`` is the root "installed at provisioning" (version 1).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from endcap_ota.bundle import build_bundle
from endcap_ota.pki import load_pki
from endcap_ota.repo import FleetRepo
from tests.fixtures.ota import TEST_EXPIRY, make_rootfs
from tests.fixtures.rauc import COMPATIBLE


@dataclass
class Fleet:
    repo: FleetRepo
    server: object  # tests.fixtures.static_http.StaticServer
    root_json: Path
    pki_dir: Path
    keyring: Path
    work: Path

    def build(self, version: str, epoch: int = 0, size_mb: int = 8) -> Path:
        rootfs = make_rootfs(self.work, size_mb=size_mb, marker=f"endcap {version}")
        return build_bundle(rootfs, self.work / f"{version}.raucb", version=version, compatible=COMPATIBLE,
                            pki=load_pki(self.pki_dir), fmt="plain", allow_plain=True, security_epoch=epoch)

    def publish(self, version: str, epoch: int = 0, ring: str = "canary", size_mb: int = 8) -> Path:
        bundle = self.build(version, epoch, size_mb)
        self.repo.publish(bundle, ring, keyring=self.keyring)
        return bundle

    def served_bundle(self, version: str) -> tuple[Path, str]:
        """(file on the server, URL path) of the published bundle ``version``."""
        t = self.repo.md["bundles"].signed.targets[f"bundles/{COMPATIBLE}/{COMPATIBLE}-{version}.raucb"]
        rel = f"targets/bundles/{COMPATIBLE}/{t.hashes['sha256']}.{COMPATIBLE}-{version}.raucb"
        return self.repo.repo_dir / rel, "/" + rel

    def device_config(self, ring: str, **kw) -> dict:
        return dict(repo_url=self.server.url, trusted_root=str(self.root_json), ring=ring, **kw)


def make_fleet(work: Path, static_http, pki) -> Fleet:
    work.mkdir(parents=True, exist_ok=True)
    repo = FleetRepo.create(work / "repo", work / "keys", expiry=dict(TEST_EXPIRY))
    server = static_http(work / "repo")
    root_json = work / "provisioned-root.json"
    shutil.copyfile(work / "repo" / "metadata" / "1.root.json", root_json)
    return Fleet(repo, server, root_json, pki.directory, pki.keyring, work)
