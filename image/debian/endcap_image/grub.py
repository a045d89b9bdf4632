"""The ESP's GRUB: the A/B grub.cfg (ota/rauc/dev/grub.cfg) with the image's fixed ids filled in, and
the initial grubenv (both slots good, A first, nothing being tried) that RAUC's grub backend edits later."""
from __future__ import annotations

import re

INITIAL_ENV = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
ENV_SIZE = 1024  # GRUB's environment block is exactly 1 KiB


def render_cfg(template: str, *, esp_volume_id: str, partuuid_a: str, partuuid_b: str) -> str:
    """Fill @ESP_UUID@, @PARTUUID_A@, @PARTUUID_B@. Raises ValueError on a placeholder left or unknown."""
    values = {"ESP_UUID": f"{esp_volume_id[:4]}-{esp_volume_id[4:]}", "PARTUUID_A": partuuid_a.lower(),
              "PARTUUID_B": partuuid_b.lower()}
    for name in re.findall(r"@([A-Z_]+)@", template):
        if name not in values:
            raise ValueError(f"grub.cfg: unknown placeholder @{name}@")
    for name, v in values.items():
        if f"@{name}@" not in template:
            raise ValueError(f"grub.cfg: placeholder @{name}@ missing")
        template = template.replace(f"@{name}@", v)
    return template


def envblock(env: dict[str, str]) -> bytes:
    """A GRUB environment block (what `grub-editenv FILE set` writes), padded with '#' to 1 KiB."""
    body = "# GRUB Environment Block\n" + "".join(f"{k}={v}\n" for k, v in env.items())
    data = body.encode()
    if len(data) > ENV_SIZE:
        raise ValueError(f"grubenv: {len(data)} bytes of variables do not fit {ENV_SIZE}")
    return data + b"#" * (ENV_SIZE - len(data))
