"""Paths and limits in one place, read from the environment so a Space can point them at its own volume."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Rows read, predicted and written at a time by bulk prediction (the CLI's --chunk-rows default).
CHUNK_ROWS = 4096


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a whole number, not {value!r}") from None


@dataclass(frozen=True)
class Limits:
    """What an input file may hold; every limit is checked before any work starts."""

    max_file_mb: int = 100
    max_rows: int = 500_000
    max_text_chars: int = 5_000
    max_predict_lines: int = 1_000
    max_zip_mb: int = 1_024  # a KoBERT run's zip is about 340 MB
    max_model_mb: int = 0  # 0: a sixth of the machine's memory (default_model_mb)
    max_train_mb: int = 0  # 0: half of the machine's memory (default_train_mb)

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def max_upload_bytes(self) -> int:
        """What the server accepts over HTTP at all (gradio's max_file_size): the larger of a data file and a zip."""
        return max(self.max_file_mb, self.max_zip_mb) * 1024 * 1024

    @property
    def max_model_bytes(self) -> int:
        """The memory one model may take (model.memory_estimate), set or from the machine."""
        return (self.max_model_mb or default_model_mb()) * 1024 * 1024

    @property
    def max_train_bytes(self) -> int:
        """The memory one training may take (model.memory_estimate with training=True), set or from the machine."""
        return (self.max_train_mb or default_train_mb()) * 1024 * 1024


# Where the container's memory limit is read (a parameter so that tests can point it at a fake tree).
CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned 63-bit number (9223372036854771712); anything past this is
# taken as none.
NO_LIMIT_BYTES = 2**60


def cgroup_limit(root: Path | None = None) -> int | None:
    """The container's memory limit in bytes: cgroup v2's `memory.max` ("max": none), else v1's
    `memory/memory.limit_in_bytes` (a huge value: none); None without one."""
    root = CGROUP_ROOT if root is None else root
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value == "max":
            return None
        try:
            limit = int(value)
        except ValueError:
            continue
        return limit if 0 < limit < NO_LIMIT_BYTES else None
    return None


def physical_memory() -> int:
    """The machine's physical memory in bytes (8 GB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 8 * 1024**3


def usable_memory(cgroup_root: Path | None = None) -> int:
    """The memory this process may use: the smaller of the machine's and the container's limit."""
    total = physical_memory()
    limit = cgroup_limit(cgroup_root)
    return total if limit is None else min(total, limit)


def default_model_mb(cgroup_root: Path | None = None) -> int:
    """A sixth of usable_memory for one served model. 4,017 MB on a 24 GB machine, 2,730 MB on a 16 GB Space, 682 MB
    in a container limited to 4 GB."""
    return max(256, usable_memory(cgroup_root) // 6 // 1024**2)


def default_train_mb(cgroup_root: Path | None = None) -> int:
    """Half of usable_memory for the one training the queue runs at a time.

    KoBERT at the tutorial's settings (batch 64 x max_len 64) is estimated at 7,265 MB (measured: 6,184 MB in fp32 on
    full-length rows, AMD EPYC): a third of a 16 GB Space (5,461 MB) would refuse the product's own default, half
    (8,192 MB) admits it. Beside it the predictor cache's models are small in practice (KoBERT serves in 1.2 GB).
    """
    return max(512, usable_memory(cgroup_root) // 2 // 1024**2)


def limits() -> Limits:
    """The limits in force: `KOBERT_DEMO_MAX_FILE_MB`, `_MAX_ROWS`, `_MAX_TEXT_CHARS`, `_MAX_PREDICT_LINES`,
    `_MAX_ZIP_MB` (an uploaded model zip), `_MAX_MODEL_MB` (the memory one served model may take; 0 or unset: a
    sixth of the usable memory) and `_MAX_TRAIN_MB` (one training's; 0 or unset: half)."""
    default = Limits()
    return Limits(
        max_file_mb=_env_int("KOBERT_DEMO_MAX_FILE_MB", default.max_file_mb),
        max_rows=_env_int("KOBERT_DEMO_MAX_ROWS", default.max_rows),
        max_text_chars=_env_int("KOBERT_DEMO_MAX_TEXT_CHARS", default.max_text_chars),
        max_predict_lines=_env_int("KOBERT_DEMO_MAX_PREDICT_LINES", default.max_predict_lines),
        max_zip_mb=_env_int("KOBERT_DEMO_MAX_ZIP_MB", default.max_zip_mb),
        max_model_mb=_env_int("KOBERT_DEMO_MAX_MODEL_MB", default.max_model_mb),
        max_train_mb=_env_int("KOBERT_DEMO_MAX_TRAIN_MB", default.max_train_mb),
    )


def runs_home() -> Path:
    """Where the app keeps its runs: `KOBERT_DEMO_RUNS` (a Space would use /data/runs), else ./runs."""
    return Path(os.environ.get("KOBERT_DEMO_RUNS", "runs")).expanduser()


def custom_models_allowed() -> bool:
    """Whether visitors may name any local folder or hub id as a model (`KOBERT_DEMO_CUSTOM_MODELS=1|0`).

    On by default, except on a Hugging Face Space (`SPACE_ID` set), where it would let any visitor make the server
    download hub models or probe its folders; KoBERT, `tiny`, runs and uploaded zips are always allowed.
    """
    value = os.environ.get("KOBERT_DEMO_CUSTOM_MODELS", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return "SPACE_ID" not in os.environ


@dataclass(frozen=True)
class JobLimits:
    """What one visitor may ask of the shared training queue, so that no visitor can hold it or fill the disk."""

    jobs_per_visitor: int = 2  # queued or running at once
    # Visitor tokens cost nothing to mint, addresses do: 40 fresh tokens once queued 78 jobs in 45 s, putting an
    # honest visitor 3.8 days back. So the queue as a whole, and each network address's share of it, are capped.
    max_queued: int = 24  # jobs waiting, all visitors together
    jobs_per_address: int = 4  # queued or running at once from one address (a shared NAT is several visitors)
    max_job_s: int = 7200  # a job estimated to take longer is refused; a running one is stopped at this age
    visitor_runs: int = 20  # runs a visitor may keep (finished ones included); delete some to start more
    visitor_mb: int = 2_000  # bytes of runs (models, copies of uploads) a visitor may keep
    runs_home_mb: int = 20_000  # past this, the oldest finished runs of any visitor are removed

    @property
    def visitor_bytes(self) -> int:
        return self.visitor_mb * 1024 * 1024

    @property
    def runs_home_bytes(self) -> int:
        return self.runs_home_mb * 1024 * 1024


def job_limits() -> JobLimits:
    """The queue's limits in force: `KOBERT_DEMO_JOBS_PER_VISITOR` (2), `_MAX_QUEUED` (24), `_JOBS_PER_ADDRESS`
    (4), `_MAX_JOB_SECONDS` (7200), `_VISITOR_RUNS` (20), `_VISITOR_MB` (2000) and `_RUNS_HOME_MB` (20000); read at
    each submit, so a change needs no restart."""
    default = JobLimits()
    return JobLimits(
        jobs_per_visitor=_env_int("KOBERT_DEMO_JOBS_PER_VISITOR", default.jobs_per_visitor),
        max_queued=_env_int("KOBERT_DEMO_MAX_QUEUED", default.max_queued),
        jobs_per_address=_env_int("KOBERT_DEMO_JOBS_PER_ADDRESS", default.jobs_per_address),
        max_job_s=_env_int("KOBERT_DEMO_MAX_JOB_SECONDS", default.max_job_s),
        visitor_runs=_env_int("KOBERT_DEMO_VISITOR_RUNS", default.visitor_runs),
        visitor_mb=_env_int("KOBERT_DEMO_VISITOR_MB", default.visitor_mb),
        runs_home_mb=_env_int("KOBERT_DEMO_RUNS_HOME_MB", default.runs_home_mb),
    )


def trusted_proxies() -> int:
    """How many proxies in front of the server append to X-Forwarded-For (`KOBERT_DEMO_TRUSTED_PROXIES`, 0 unset).

    Only the deployment knows: behind none, the header is whatever a visitor sent, so it is ignored; a Hugging Face
    Space sets it to 1 (its proxy appends the address it saw).
    """
    return max(0, _env_int("KOBERT_DEMO_TRUSTED_PROXIES", 0))
