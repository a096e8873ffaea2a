"""How much memory this process may still use, and how to say that a job will not fit.

Jobs estimate what they need from their inputs and settings before they start
(see ``mlnb.augment.memory`` and ``mlnb.faces.pipeline``) and refuse, or skip
and record, what cannot fit, instead of dying half-way with ``MemoryError`` or
``std::bad_alloc``. Rules request memory (``mem_mb``) from the same estimates.
"""

from __future__ import annotations

import resource
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30

_CGROUP = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 says "max" when unlimited


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_headroom() -> int | None:
    """The memory limit of this process's cgroup (v2, or v1) minus what the cgroup uses now."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for entry in entries:
        _, controllers, path = entry.split(":", 2)
        folder = _CGROUP / path.lstrip("/") if controllers == "" else None
        if folder is not None:  # v2
            limit, used = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
        elif "memory" in controllers.split(","):  # v1
            folder = _CGROUP / "memory" / path.lstrip("/")
            limit, used = _read_int(folder / "memory.limit_in_bytes"), _read_int(folder / "memory.usage_in_bytes")
        else:
            continue
        if limit is not None and used is not None and limit < 1 << 60:
            return max(limit - used, 0)
    return None


def _address_space_headroom() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(soft - pages * resource.getpagesize(), 0)


def available_bytes() -> int | None:
    """Bytes this process can still allocate: the tightest of free memory, its cgroup and its rlimit.

    None when nothing can be read (not Linux): callers then do not refuse.
    """
    limits = [value for value in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom())
              if value is not None]
    return min(limits) if limits else None


def describe(size: int) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"


def to_mb(size: int) -> int:
    """Bytes as the whole MB (rounded up) that Snakemake's ``mem_mb`` takes."""
    return -(-size // 1_000_000)
