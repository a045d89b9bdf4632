"""The firmware security-epoch floor: a second TPM NV counter, separate from the model epoch counter.

Same construction as the model floor (tpm.py), reusing its code with other NV indices: an NV
*counter* (auth-write with empty auth: anyone may raise it, nobody can lower it) and a write-locked
owner NV index holding the counter's base (the epoch-0 value), so epoch = counter − base. The base
index carries ``sha256(PURPOSE)`` where the model anchor carries the root key hash, so a model anchor
can never be read as a firmware base (or the other way round).

Who may raise it: the counter itself can be incremented by anyone with TPM access, so the service caps a
raise by what the updater committed: the epoch in the updater's floor file (``committed_epoch``), which only
the updater writes, after RAUC verified the bundle's signature and the new slot proved healthy. A caller
on the bus can then raise the floor at most to the epoch of firmware this device already runs.

Enrolment: ``enrol`` defines both once (needs owner auth: empty on a fresh TPM, i.e. on the staging
bench and in tests/dev runs). ``read`` enrols on first use while owner auth is still empty and
otherwise reports ``anchor`` (not enrolled) — never an unverified floor.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import msgspec

from ..core.bundlever import FloorFile
from ..core.errors import IntegrityError
from .tpm import Anchor, Tpm

FIRMWARE_BASE_INDEX = 0x01000E12
FIRMWARE_COUNTER_INDEX = 0x01000E13
PURPOSE = b"endcap firmware security epoch v1"
PURPOSE_SHA256 = hashlib.sha256(PURPOSE).digest()
MAX_EPOCH_STEP = 1024  # tpm.raise_epoch's bound: counters only step by one


def open_floor(tcti: str, *, base_index: int = FIRMWARE_BASE_INDEX,
               counter_index: int = FIRMWARE_COUNTER_INDEX) -> Tpm:
    """A ``Tpm`` whose anchor/counter are the firmware base and counter (use as a context manager)."""
    return Tpm(tcti, anchor_index=base_index, counter_index=counter_index)


def enrol(tpm: Tpm) -> int:
    """Define the firmware counter and its locked base index if absent; return the epoch (0 when new).

    Raises: IntegrityError (``anchor`` when the base index belongs to something else; TPM faults).
    """
    if not tpm.anchor_defined():
        base = tpm.define_counter()
        tpm.define_anchor(Anchor(PURPOSE_SHA256, base))
    else:
        tpm.define_counter()  # a deleted counter restarts at or above the TPM's highest value
    return read(tpm, enrol_missing=False)


def read(tpm: Tpm, *, enrol_missing: bool = True) -> int:
    """The firmware floor (counter − locked base), after the attribute checks tpm.py makes.

    Raises: IntegrityError ``anchor`` (not enrolled / foreign index), ``counter``, ``tpm_*``.
    """
    if enrol_missing and not tpm.anchor_defined():
        try:
            return enrol(tpm)
        except IntegrityError as e:
            raise IntegrityError(f"firmware floor not enrolled at NV {tpm.anchor_index:#x} and cannot be "
                                 f"enrolled now (owner auth set?): {e}", code="anchor") from e
    anchor = tpm.read_anchor()
    if anchor.root_key_sha256 != PURPOSE_SHA256:
        raise IntegrityError(f"NV {tpm.anchor_index:#x} is not a firmware-floor base index", code="anchor")
    return tpm.epoch()


def committed_epoch(path: Path) -> int:
    """The epoch the updater committed (its floor file). Raises: IntegrityError(code="epoch_cap") when the file
    is missing or unreadable: then nothing was committed and no raise is allowed."""
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=FloorFile).epoch
    except (OSError, msgspec.DecodeError) as e:
        raise IntegrityError(f"committed floor file {path} not readable ({e}): no raise without it",
                             code="epoch_cap") from e


def raise_to(tpm: Tpm, epoch: int, *, cap: Optional[int] = None) -> int:
    """Raise the floor to ``epoch`` (never lowers it); return the floor now. ``cap``: the highest epoch
    a raise may reach (the committed epoch); None only for provisioning and tests.

    Raises: IntegrityError ``epoch`` (negative, or more than MAX_EPOCH_STEP above the floor), ``epoch_cap``
    (above ``cap``), TPM faults.
    """
    if epoch < 0:
        raise IntegrityError(f"firmware security epoch {epoch} is negative", code="epoch")
    current = read(tpm)
    if epoch <= current:
        return current
    if cap is not None and epoch > cap:
        raise IntegrityError(f"firmware security epoch {epoch} is above the committed epoch {cap}: not raised",
                             code="epoch_cap")
    return tpm.raise_epoch(epoch)
