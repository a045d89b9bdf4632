"""trust ``models`` and ``rollback`` (the maintenance page's models view) over the real bus and a real swtpm.

The service runs in a thread through its ``main(ctx)`` (``tests.fixtures.trust.RunningTrust``).
"""
from __future__ import annotations

from pathlib import Path

import pynng
import pytest

from endcap.core import messages as m
from endcap.core.bus import Codec
from endcap.core.errors import RemoteError
from tests.fixtures.trust import RunningTrust, make_package, random_files


Running = RunningTrust


def _models_published(sub: pynng.Sub0, version: str) -> m.Installed:
    codec = Codec("test")
    for _ in range(50):  # bounded by the socket's receive timeout per message
        topic, _, payload = sub.recv().partition(b"\0")
        got = codec.decode_body(codec.decode_envelope(payload).body, m.Installed)
        if got.version == version:
            return got
    raise AssertionError(f"trust.model never announced {version}")


def test_models_and_rollback_to_previous_then_floor_refuses(trust_root, tpm_tcti, enrolled, pki):
    svc = Running(tpm_tcti, trust_root)
    try:
        empty = svc.call("models", m.Empty(), m.ModelsReply)
        assert empty.active is None and empty.previous is None and not empty.attested
        with pytest.raises(RemoteError) as e:
            svc.call("rollback", m.Empty(), m.Installed)
        assert e.value.code == "no_previous" and "no previous model" in str(e.value)

        v1 = svc.call("install", m.InstallRequest(str(make_package(trust_root / "p1", random_files(), pki=pki, version="1.0.0", epoch=1))), m.Installed)
        one = svc.call("models", m.Empty(), m.ModelsReply)
        assert one.active == v1 and one.previous is None and one.attested
        v2 = svc.call("install", m.InstallRequest(str(make_package(trust_root / "p2", random_files(), pki=pki, version="2.0.0", epoch=1))), m.Installed)
        two = svc.call("models", m.Empty(), m.ModelsReply)
        assert two.active == v2 and two.previous is not None and two.previous.digest == v1.digest and two.attested

        sub = pynng.Sub0(recv_timeout=10_000)
        sub.subscribe(b"trust.model\0")
        sub.dial(svc.paths.pub_address("trust"), block=False)
        back = svc.call("rollback", m.Empty(), m.Installed)
        assert (back.version, back.digest) == ("1.0.0", v1.digest)
        assert _models_published(sub, "1.0.0").digest == v1.digest
        sub.close()
        after = svc.call("models", m.Empty(), m.ModelsReply)
        assert after.active.digest == v1.digest and after.previous.digest == v2.digest and after.attested
        status = svc.call("active", m.Empty(), m.TrustStatus)
        assert status.model.digest == v1.digest and status.attested

        # v3 raises the floor to 2: v1 (epoch 1) is no longer a rollback target, and asking is refused clearly
        v3 = svc.call("install", m.InstallRequest(str(make_package(trust_root / "p3", random_files(), pki=pki, version="3.0.0", epoch=2))), m.Installed)
        three = svc.call("models", m.Empty(), m.ModelsReply)
        assert three.active == v3 and three.previous is None
        with pytest.raises(RemoteError) as e:
            svc.call("rollback", m.Empty(), m.Installed)
        assert e.value.code == "rollback" and "security epoch 1 is older than this device's floor 2" in str(e.value)
        assert svc.call("active", m.Empty(), m.TrustStatus).model == v3
    finally:
        svc.stop()


def test_a_tampered_previous_model_is_not_offered_and_rollback_refuses_it(trust_root, tpm_tcti, enrolled, pki):
    svc = Running(tpm_tcti, trust_root)
    try:
        svc.call("install", m.InstallRequest(str(make_package(trust_root / "p1", random_files(), pki=pki, version="1.0.0", epoch=1))), m.Installed)
        v2 = svc.call("install", m.InstallRequest(str(make_package(trust_root / "p2", random_files(), pki=pki, version="2.0.0", epoch=1))), m.Installed)
        prev = svc.call("models", m.Empty(), m.ModelsReply).previous
        assert prev is not None
        part = Path(prev.path) / "part0.bin"
        data = bytearray(part.read_bytes())
        data[0] ^= 0xFF
        part.write_bytes(bytes(data))
        assert svc.call("models", m.Empty(), m.ModelsReply).previous is None
        with pytest.raises(RemoteError) as e:
            svc.call("rollback", m.Empty(), m.Installed)
        assert e.value.code == "tampered" and str(e.value).startswith("rollback: rollback refused")
        after = svc.call("models", m.Empty(), m.ModelsReply)
        assert after.active == v2 and after.attested
    finally:
        svc.stop()
