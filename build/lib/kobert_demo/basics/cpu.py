"""What this CPU's instruction set offers the fast paths (read from /proc/cpuinfo; nothing assumed elsewhere)."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

# The instruction-set extensions the fast paths use (bf16 autocast and serving, int8 serving), as /proc/cpuinfo
# names them; bench and serving's cache record which of them this CPU has.
SPEED_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni")


@cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def has_bf16() -> bool:
    """Native bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def has_vnni() -> bool:
    """int8 dot products that accumulate in 32 bits (AVX512-VNNI, AVX-VNNI or AMX): no overflow on full-range input."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def speed_flags() -> list[str]:
    """The SPEED_FLAGS this CPU has."""
    return [flag for flag in SPEED_FLAGS if flag in cpu_flags()]


@cache
def cpu_name() -> str:
    """The CPU's model name as /proc/cpuinfo gives it, else what platform knows."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
