"""The memory budget is an upper bound: the estimate against measured peaks, the container's limit, explanations."""

from __future__ import annotations

from pathlib import Path

import pytest

from kobert_demo import settings

GIB = 1024**3


def _fake_cgroup(root: Path, v2: str | None = None, v1: str | None = None) -> Path:
    if v2 is not None:
        (root / "memory.max").parent.mkdir(parents=True, exist_ok=True)
        (root / "memory.max").write_text(v2 + "\n")
    if v1 is not None:
        (root / "memory").mkdir(parents=True, exist_ok=True)
        (root / "memory" / "memory.limit_in_bytes").write_text(v1 + "\n")
    return root


@pytest.mark.parametrize(
    ("v2", "v1", "limit"),
    [
        (str(4 * GIB), None, 4 * GIB),  # cgroup v2 with a limit
        ("max", None, None),  # v2 without one
        (None, str(2 * GIB), 2 * GIB),  # cgroup v1 with a limit
        (None, "9223372036854771712", None),  # v1's "no limit"
        (None, None, None),  # no cgroup files at all
    ],
)
def test_cgroup_limit_reads_v2_and_v1(tmp_path, v2, v1, limit):
    assert settings.cgroup_limit(_fake_cgroup(tmp_path, v2, v1)) == limit


def test_the_default_budget_is_a_sixth_of_the_container_limit_not_the_hosts_ram(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "physical_memory", lambda: 64 * GIB)
    monkeypatch.setattr(settings, "CGROUP_ROOT", _fake_cgroup(tmp_path, v2=str(6 * GIB)))
    monkeypatch.delenv("KOBERT_DEMO_MAX_MODEL_MB", raising=False)
    assert settings.default_model_mb() == 1024
    assert settings.limits().max_model_bytes == 1024 * 2**20
    # A limit above the machine's memory does not raise the budget past a sixth of the machine.
    monkeypatch.setattr(settings, "CGROUP_ROOT", _fake_cgroup(tmp_path / "big", v2=str(600 * GIB)))
    assert settings.default_model_mb() == 64 * 1024 // 6
