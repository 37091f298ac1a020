"""Files written whole or not at all: one atomic writer for every file and folder the app keeps.

A reader (another process, a second server, the web app following a run) never sees half a file, and a kill -9 at
any moment leaves the previous complete file or the new one. Each write goes to a temporary name of its own (pid,
thread and random suffix, so that two writers of one file never share a temporary) beside the target, then
`os.replace` puts it in place. No fsync for these small files: a killed process loses nothing the kernel already
has; only a power cut could, and no run is worth the seconds of fsync on every step of a shared disk. A model folder,
written once an epoch, is synced before it is swapped in (`sync_folder`: 0.2 s for KoBERT's 370 MB).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_MARK = ".tmp-"  # every temporary name holds this, so that cleaners and listers can skip them


def temp_name(target: Path) -> Path:
    """A fresh hidden name beside target, unique to this process, thread and call."""
    tag = f"{os.getpid()}-{threading.get_ident() % 10**6}-{secrets.token_hex(4)}"
    return target.with_name(f".{target.name}{TEMP_MARK}{tag}")


def is_temp(path: Path) -> bool:
    """Whether path is a temporary name of this module (a write in progress, or one a kill left behind)."""
    return path.name.startswith(".") and TEMP_MARK in path.name


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write target's new content to; on success it replaces target, on error it goes."""
    target = Path(target)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, data: Any, indent: int | None = 2) -> None:
    """data as UTF-8 JSON (Korean kept readable), ending with a newline."""
    write_text(target, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in path; FileNotFoundError when it is missing, ValueError when it is not whole JSON (a file from
    outside this module's writer: a hand edit, a torn copy)."""
    data = Path(path).read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{Path(path).name} is not UTF-8: {error.reason}") from None


def replace_folder(new: Path, target: Path) -> None:
    """Put the complete folder new in target's place, so that target is always the old folder or the new one.

    On Linux one `renameat2(RENAME_EXCHANGE)` swaps them; elsewhere (or on a file system that lacks it) target goes
    aside first and `recover_folder` undoes a kill between the two renames. The old folder is removed after.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old folder
        return
    aside = target.with_name(f".{target.name}{TEMP_MARK}old")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside target to fill; on success it is synced and swapped in for target
    (replace_folder), on error it goes, and an OSError names target rather than its temporary. What killed writes of
    target left beside it is removed first: this is target's one writer."""
    target = Path(target)
    recover_folder(target)
    remove_temps(target)
    tmp = temp_name(target)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        sync_folder(tmp)
        replace_folder(tmp, target)
        sync_directory(target.parent)
    except OSError as error:
        if error.filename:
            error.filename = str(error.filename).replace(str(tmp), str(target))
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sync_folder(folder: Path) -> None:
    """fsync every file under folder, then the folder itself, so that a power cut after a swap keeps its content."""
    for root, _, names in os.walk(folder):
        for name in names:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    sync_directory(folder)


def sync_directory(folder: Path) -> None:
    """fsync a folder's entries (names renamed into it); nothing where the OS cannot open a folder (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system that cannot sync a folder
        pass
    finally:
        os.close(fd)


def remove_temps(target: Path) -> None:
    """Remove what killed writes of target left beside it (files or folders). Only for target's one writer: another
    writer's temporary in progress would go too."""
    prefix = f".{target.name}{TEMP_MARK}"
    if not target.parent.is_dir():
        return
    for path in target.parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def recover_folder(target: Path) -> None:
    """Undo a replace_folder that was killed between its two renames (target gone, the old one aside)."""
    aside = target.with_name(f".{target.name}{TEMP_MARK}old")
    if not target.exists() and aside.is_dir():
        with contextlib.suppress(FileNotFoundError):
            os.replace(aside, target)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2; False where that is not available."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0
