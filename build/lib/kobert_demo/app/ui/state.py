"""What every tab shares: the runs home, the job queue, the predictor cache, ownership checks and user errors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from kobert_demo.app.queue import JobQueue, is_owner, owner_id
from kobert_demo.basics.errors import BackboneError, UserFacingError
from kobert_demo.basics.runs import Run, list_runs
from kobert_demo.basics.settings import custom_models_allowed, limits, trusted_proxies
from kobert_demo.engine.backbones import is_curated

from .i18n import lang_of, t
from .render import warn

if TYPE_CHECKING:
    from kobert_demo.serving.predict import Predictor, PredictorCache

log = logging.getLogger("kobert_demo.app.ui")

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ZIP_PREFIX = "zip:"
_ZIP_ID = re.compile(r"^zip:([0-9a-f]{24})$")
WORK_MAX_AGE_S = 3600.0
# A visitor token is the only key to a visitor's runs: a short one ("a") is anyone's. The page makes 32.
MIN_VISITOR_CHARS = 16


class VisitorError(UserFacingError):
    """Something the visitor can fix in the web app, as a message key and parameters like the engine's errors."""


def is_user_error(error: Exception) -> bool:
    """Whether the error's message is meant for the user: ours, the engine's data/run/zip/config errors, backbones."""
    # UserFacingError: the engine's data, run, zip and backbone errors; ValueError: config errors
    return isinstance(error, (VisitorError, UserFacingError, ValueError, BackboneError))


def client_address(request: gr.Request | None) -> str:
    """The visitor's network address: what the outermost trusted proxy saw (settings.trusted_proxies: the entry it
    appended to X-Forwarded-For; earlier entries are the visitor's to forge), else the connection's peer."""
    hops = trusted_proxies()
    headers = getattr(request, "headers", None) or {}
    forwarded = [part.strip() for part in (headers.get("x-forwarded-for") or "").split(",") if part.strip()]
    if hops and forwarded:
        return forwarded[-min(hops, len(forwarded))]
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")


def message(error: Exception, lang: str) -> str:
    """The one sentence to show for an error; a bug is logged with its traceback and named only."""
    if isinstance(error, UserFacingError):  # ours and the engine's errors carry Korean too (messages.py)
        return error.text(lang)
    if is_user_error(error):
        return str(error)
    log.error("unexpected error in the web app:\n%s", "".join(traceback.format_exception(error)))
    return t(lang, "err_unexpected", kind=type(error).__name__)


def api_errors(fn: Callable) -> Callable:
    """For API endpoints: any failure becomes gr.Error with one English sentence (the client raises it)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise gr.Error(message(error, "en"), print_exception=False) from None

    return wrapper


def shown_errors(fallback: Callable[[], Any] = gr.skip) -> Callable[[Callable], Callable]:
    """For UI handlers: a failure becomes a warning toast in the visitor's language (from the handler's gr.Request
    argument), and the handler returns fallback() instead, so the page keeps what it shows."""

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
                warn(message(error, lang_of(request)))
                return fallback()

        return wrapper

    return decorate


def check_model_allowed(model: str | None) -> None:
    """VisitorError for a model to train that this server does not accept: a curated backbone always is (a known model);
    any other folder or hub id only where custom models are allowed (KOBERT_DEMO_CUSTOM_MODELS)."""
    if not is_curated(model) and not custom_models_allowed():
        raise VisitorError("err_custom_models_off")


def check_visitor(visitor: str | None) -> str:
    """The visitor token, if it is one; VisitorError when it is missing or short enough to guess."""
    if not visitor:
        raise VisitorError("err_no_visitor")
    if len(visitor) < MIN_VISITOR_CHARS:
        raise VisitorError("err_short_visitor", n=MIN_VISITOR_CHARS)
    return visitor


@dataclass
class AppState:
    """The server side of the app: one per process, shared by every visitor."""

    home: Path
    queue: JobQueue
    # What the app may serve (exports, prediction CSVs): KoBertApp.launch allows it.
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kobert-demo-")))
    # What it never serves (uploaded zips, unpacked models): apart from work, and blocked in KoBertApp.launch.
    private: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kobert-demo-private-")))
    _cache: PredictorCache | None = field(default=None, repr=False)
    _zip_names: dict[str, str] = field(default_factory=dict, repr=False)  # digest -> the name it was uploaded as
    _exports: dict[str, Path] = field(default_factory=dict, repr=False)  # run and model stamp -> its zip
    _export_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # not _lock: zipping takes s
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- runs and owners --------------------------------------------------------------------------------------
    def run(self, name: str | None) -> Run:
        """The run called name in the runs home; VisitorError if there is none (names never leave the home)."""
        name = (name or "").strip()
        if not name:
            raise VisitorError("err_no_run_chosen")
        if not _RUN_NAME.match(name) or not (self.home / name / "status.json").is_file():
            raise VisitorError("err_no_such_run", run=name[:80])
        return Run(self.home / name)

    def owned_run(self, name: str | None, visitor: str | None) -> Run:
        """The run, if this visitor owns it; VisitorError otherwise."""
        visitor = check_visitor(visitor)
        run = self.run(name)
        if not is_owner(run, visitor):
            raise VisitorError("err_not_owner", run=run.name)
        return run

    def visitor_runs(self, visitor: str | None) -> list[Run]:
        """This visitor's runs, newest first (none without a token)."""
        if not visitor:
            return []
        owner = owner_id(check_visitor(visitor))
        return [run for run in list_runs(self.home) if run.config().get("owner") == owner]

    def browser_secret(self) -> str:
        """The key that encrypts visitor tokens in browsers; kept in the runs home so it survives restarts."""
        path = self.home / ".browser_secret"
        with self._lock:
            if not path.is_file():
                self.home.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
                path.chmod(0o600)
            return path.read_text(encoding="utf-8").strip()

    # --- prediction -------------------------------------------------------------------------------------------
    @property
    def cache(self) -> PredictorCache:
        """The predictors shared by all visitors (created on first use: predict.py imports torch)."""
        with self._lock:
            if self._cache is None:
                from kobert_demo.serving.predict import PredictorCache

                self._cache = PredictorCache()
            return self._cache

    def save_zip(self, upload: str | Path) -> str:
        """Keep an uploaded model zip under its content hash and check that it loads; its model reference."""
        upload = Path(upload)
        limit = limits().max_zip_mb
        if upload.stat().st_size > limit * 1024 * 1024:
            raise VisitorError("err_zip_too_big", name=upload.name, limit=limit)
        with upload.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()[:24]
        target = self.folder("zips", private=True) / f"{digest}.zip"
        if not target.is_file():
            shutil.copyfile(upload, target)
        self._zip_names.setdefault(digest, upload.name)
        ref = f"{ZIP_PREFIX}{digest}"
        try:
            self.predictor(ref)
        except Exception:
            target.unlink(missing_ok=True)
            raise
        return ref

    def predictor(self, ref: str | None) -> Predictor:
        """The shared predictor for a model reference: a run name, `zip:<id>`, a local folder or a hub id."""
        from kobert_demo.engine.checkpoints import resolve_folder
        from kobert_demo.serving.export import import_zip, load_unpacked, load_zip
        from kobert_demo.serving.predict import Predictor

        ref = (ref or "").strip()
        if not ref:
            raise VisitorError("err_no_model")
        if ref.startswith(ZIP_PREFIX):
            match = _ZIP_ID.match(ref)
            path = self.private / "zips" / f"{match[1]}.zip" if match else None
            if path is None or not path.is_file():
                raise VisitorError("err_no_zip", ref=ref[:80])
            path.touch()  # in use: not pruned

            name = self._zip_names.get(match[1], path.name)

            def load_from_zip() -> Predictor:
                """Unpack into a temporary folder, load, serve on `auto` (its files in a temporary folder of its
                own, a big model's built by a child process from the unpacked folder, as a run's are), and remove
                the folder."""
                with tempfile.TemporaryDirectory(dir=self.folder("unpacked", private=True)) as folder:
                    reload = partial(load_zip, path, folder, name)  # unpacks again: explanations, auto
                    unpacked = import_zip(path, folder, name)
                    predictor = Predictor(load_unpacked(unpacked, name), reload=reload, build_from=(unpacked, False))
                    predictor.use("auto")  # after the constructor: nothing else holds the fp32 model then
                    return predictor

            return self.cache.get(ref, load_from_zip)
        if _RUN_NAME.match(ref) and (self.home / ref / "status.json").is_file():
            run = Run(self.home / ref)
            if not run.has_model:
                raise VisitorError("err_run_no_model", run=run.name)
            stamp = (run.model_dir / "model.safetensors").stat().st_mtime_ns
            return self.cache.get(
                f"run:{run.name}:{stamp}", lambda: Predictor.load(run.path, backend="auto", name=run.name)
            )
        if not custom_models_allowed():
            raise VisitorError("err_custom_models_off")
        return self.cache.get(
            f"path:{ref}", lambda: Predictor.load(resolve_folder(ref), trusted=False, backend="auto", name=ref)
        )

    # --- exports ----------------------------------------------------------------------------------------------
    def export(self, run: Run) -> Path:
        """The run's model zip, made once per model: a second export of the same model gives the same file.

        A KoBERT run's zip is about 340 MB; without this, every click would write another for an hour. The zip sits
        in a fresh random folder (not a path anyone could guess) and stays while it is asked for again.
        """
        from kobert_demo.serving.export import export_zip

        if not run.has_model:
            raise VisitorError("err_run_no_model", run=run.name)
        key = f"{run.name}:{(run.model_dir / 'model.safetensors').stat().st_mtime_ns}"
        with self._export_lock:
            made = self._exports.get(key)
            if made is not None and made.is_file():
                now = time.time()
                for path in (made, made.parent):  # in use: not pruned
                    os.utime(path, (now, now))
                return made
            made = export_zip(run, self.scratch("exports"))
            self._exports[key] = made
            return made

    # --- scratch files ----------------------------------------------------------------------------------------
    def folder(self, name: str, private: bool = False) -> Path:
        """A scratch folder under the work directory (or the private one), with what has not been used for an hour
        removed."""
        folder = (self.private if private else self.work) / name
        folder.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - WORK_MAX_AGE_S
        for item in folder.iterdir():
            try:
                if item.stat().st_mtime >= cutoff:
                    continue
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)
            except FileNotFoundError:  # another request pruned it first
                continue
        return folder

    def scratch(self, name: str) -> Path:
        """A fresh, unique folder under `folder(name)` for one output file."""
        return Path(tempfile.mkdtemp(dir=self.folder(name)))
