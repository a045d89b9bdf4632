"""The GPT disk layout (pure): ESP | rootfs_a | rootfs_b | data, 1 MiB aligned, and its sfdisk script.

Why this layout: the ESP holds the standalone GRUB and the grubenv RAUC's grub backend writes; two
equal rootfs slots (A/B, read-only, written whole by RAUC); one data partition that no update touches
(models, POS cursor, counters, RAUC's status). Partition numbers are part of the contract: GRUB boots
(hd0,gpt2) for A and (hd0,gpt3) for B.
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_TAIL_MIB = 1  # the backup GPT at the end of the disk


@dataclass(frozen=True)
class Partition:
    number: int
    name: str  # GPT PARTLABEL
    start_mib: int
    size_mib: int
    type_guid: str
    partuuid: str

    @property
    def offset(self) -> int:
        return self.start_mib * MIB

    @property
    def size(self) -> int:
        return self.size_mib * MIB


@dataclass(frozen=True)
class Layout:
    disk_guid: str
    partitions: tuple[Partition, ...]
    size_mib: int

    def by_name(self, name: str) -> Partition:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(f"partition {name!r}: not in the layout ({', '.join(p.name for p in self.partitions)})")

    def sfdisk_script(self) -> str:
        lines = ["label: gpt", f"label-id: {self.disk_guid.upper()}", "unit: sectors", "first-lba: 2048", ""]
        for p in self.partitions:
            lines.append(f"start={p.offset // SECTOR}, size={p.size // SECTOR}, type={p.type_guid}, "
                         f"uuid={p.partuuid.upper()}, name=\"{p.name}\"")
        return "\n".join(lines) + "\n"


def plan(*, esp_mib: int, rootfs_mib: int, data_mib: int, ids: dict[str, str]) -> Layout:
    """The layout for these sizes and fixed ids. Raises ValueError naming a bad size."""
    for name, v in (("esp_mib", esp_mib), ("rootfs_mib", rootfs_mib), ("data_mib", data_mib)):
        if v <= 0:
            raise ValueError(f"{name}: {v} must be > 0")
    parts = []
    start = 1
    for number, (name, size, typ, key) in enumerate((
            ("esp", esp_mib, ESP_TYPE, "esp_partuuid"),
            ("rootfs_a", rootfs_mib, LINUX_FS_TYPE, "rootfs_a_partuuid"),
            ("rootfs_b", rootfs_mib, LINUX_FS_TYPE, "rootfs_b_partuuid"),
            ("data", data_mib, LINUX_FS_TYPE, "data_partuuid")), start=1):
        parts.append(Partition(number, name, start, size, typ, ids[key]))
        start += size
    return Layout(ids["disk_guid"], tuple(parts), start + GPT_TAIL_MIB)


def fs_size_mib(used_bytes: int, slot_mib: int, headroom: float = 0.3, minimum_mib: int = 64) -> int:
    """Size of the rootfs filesystem image: used space plus headroom, 64 MiB aligned, at most the slot.

    Raises ValueError when the tree does not fit the slot.
    """
    want = int(used_bytes * (1 + headroom)) + minimum_mib * MIB
    mib = -(-want // (64 * MIB)) * 64
    if mib > slot_mib:
        raise ValueError(f"rootfs needs {mib} MiB (used {used_bytes // MIB} MiB + {headroom:.0%}); "
                         f"the slot has {slot_mib} MiB: raise image.rootfs_mib")
    return mib
