"""Which slot GRUB boots, following RAUC's documented A/B grub.cfg (pure; no I/O).

The dev image's grub.cfg runs exactly this logic on the grubenv RAUC's ``grub`` backend writes
(``ORDER``, ``<X>_OK``, ``<X>_TRY``); tests use it to play a reboot. Script (RAUC docs, "GRUB"):
defaults ORDER="A B", all flags 0; ``load_env``; for each slot in ORDER set its TRY=1 and pick the
first with OK=1 and TRY=0 (before setting); the default entry is 0 (A) when none qualifies; when
entry 0 is chosen, slots with OK=1 and TRY=1 get TRY=0; ``save_env A_TRY B_TRY``.
"""
from __future__ import annotations

from dataclasses import dataclass

SLOTS = ("A", "B")


@dataclass(frozen=True)
class BootChoice:
    slot: str  # bootname GRUB boots
    env: dict[str, str]  # the grubenv after GRUB's save_env


def _flag(env: dict[str, str], name: str) -> int:
    try:
        return int(env.get(name, "0"))
    except ValueError:
        return 0  # GRUB's `-eq` on a non-number is false, like 0


def boot(env: dict[str, str]) -> BootChoice:
    """Run the documented script once on ``env`` (the grubenv's variables)."""
    order = env.get("ORDER", "A B").split()
    out = dict(env)
    default = 0
    for slot in order:
        if slot not in SLOTS:
            continue
        ok, tried = _flag(env, f"{slot}_OK"), _flag(out, f"{slot}_TRY")
        out[f"{slot}_TRY"] = "1"
        if ok == 1 and tried == 0:
            default = SLOTS.index(slot)
            break
    if default == 0:
        for slot in SLOTS:
            if _flag(out, f"{slot}_OK") == 1 and _flag(out, f"{slot}_TRY") == 1:
                out[f"{slot}_TRY"] = "0"
    for slot in SLOTS:  # save_env A_TRY B_TRY writes both, set or not
        out.setdefault(f"{slot}_TRY", "0")
    return BootChoice(SLOTS[default], out)


def initial_env() -> dict[str, str]:
    """The grubenv a freshly flashed device starts with: A first, both slots good."""
    return {"ORDER": "A B", "A_OK": "1", "B_OK": "1", "A_TRY": "0", "B_TRY": "0"}


def parse_env(text: str) -> dict[str, str]:
    """Parse ``grub-editenv FILE list`` output (``NAME=value`` lines)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name:
            env[name] = value
    return env
