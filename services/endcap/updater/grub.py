"""Which slot GRUB boots, following RAUC's documented A/B grub.cfg (pure; no I/O).

The dev image's grub.cfg runs exactly this logic on the grubenv RAUC's ``grub`` backend writes
(``ORDER``, ``<X>_OK``, ``<X>_TRY``); tests use it to play a reboot. Script (RAUC docs, "GRUB"):
defaults ORDER="A B", all flags 0; ``load_env``; for each slot in ORDER set its TRY=1 and pick the
first with OK=1 and TRY=0 (before setting); ``save_env A_TRY B_TRY``.

When no slot qualifies, RAUC's script boots a rescue entry (its entry 0) and clears the try flags of
the good slots. These images have no rescue slot: the good slots' try flags are cleared and the first
good slot in ORDER boots again, marked as tried (no good slot at all: A). An earlier version took
"entry 0" to mean slot A, which cleared A's try flag whenever A was picked: an A that never came up
was booted again forever instead of falling back to B.
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
    order = [slot for slot in env.get("ORDER", "A B").split() if slot in SLOTS]
    out = dict(env)
    chosen = None
    for slot in order:
        ok, tried = _flag(env, f"{slot}_OK"), _flag(out, f"{slot}_TRY")
        out[f"{slot}_TRY"] = "1"
        if ok == 1 and tried == 0:
            chosen = slot
            break
    if chosen is None:  # every good slot was tried and never confirmed: try them again from the first
        good = [slot for slot in SLOTS if _flag(env, f"{slot}_OK") == 1]
        for slot in good:
            out[f"{slot}_TRY"] = "0"
        chosen = next((slot for slot in order if slot in good), "A")
        if chosen in good:
            out[f"{chosen}_TRY"] = "1"
    for slot in SLOTS:  # save_env A_TRY B_TRY writes both, set or not
        out.setdefault(f"{slot}_TRY", "0")
    return BootChoice(chosen, out)


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
