"""The one message catalogue (messages.py): both languages for every key, every key the code names exists, real
errors translate."""

from __future__ import annotations

import ast
import pickle
import re
import string
import zipfile
from pathlib import Path

import pytest

from kobert_demo.basics.data import DataError, read_table
from kobert_demo.basics.errors import BackboneError, UserFacingError
from kobert_demo.basics.messages import MESSAGES, TERMS_KO, Term, t
from kobert_demo.basics.runs import RunError, open_run

HANGUL = re.compile(r"[\uac00-\ud7a3]")
ROOT = Path(__file__).resolve().parents[1] / "kobert_demo"
SETTING_KEYS = ("help", "label", "error", "error_max")  # the catalogue keys a config.Setting names
ERRORS = {
    "DataError", "BackboneError", "ModelZipError", "RunError", "UserFacingError", "CliError", "VisitorError",
    "TrainingError", "EventError",
}  # fmt: skip


def _fields(template: str) -> set[tuple[str, str | None, str]]:
    """(name, conversion, format spec) of every field in a template."""
    return {(name, conv, spec) for _, name, spec, conv in string.Formatter().parse(template) if name is not None}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_key_has_both_languages_with_the_same_fields(key: str) -> None:
    english, korean = MESSAGES[key]
    assert english.strip() and korean.strip()
    assert _fields(english) == _fields(korean)
    assert HANGUL.search(korean) or english == korean  # "{name}: {error}" wraps another sentence as is
    assert not HANGUL.search(english)


def test_every_term_is_korean() -> None:
    assert all(HANGUL.search(korean) for korean in TERMS_KO.values())


def test_every_raise_in_the_engine_uses_a_known_key() -> None:
    """Each `SomeError("key", ...)` in the package names a key in MESSAGES (not an English sentence)."""
    keys = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ERRORS:
                first = node.args[0] if node.args else None
                options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
                for option in options:
                    assert isinstance(option, ast.Constant), f"{path.name}:{node.lineno}"
                    keys.append((path.name, node.lineno, option.value))
    assert len(keys) > 50
    unknown = [key for key in keys if key[2] not in MESSAGES]
    assert not unknown


def test_english_is_str_and_korean_is_text() -> None:
    error = DataError("data_no_rows", name="a.tsv")
    assert str(error) == "a.tsv has a header but no data rows." == error.text("en")
    assert error.text("ko") == "a.tsv 에 머리글만 있고 데이터 행이 없습니다."
    assert isinstance(error, ValueError) and isinstance(BackboneError("model_heads", path="x"), RuntimeError)


def test_errors_survive_pickling_with_their_key() -> None:
    inner = BackboneError("model_no_head", folder="/m", keys="c.w")
    from kobert_demo.serving.export import ModelZipError

    error = pickle.loads(pickle.dumps(ModelZipError("zip_bad_model", name="m.zip", error=inner)))
    assert type(error) is ModelZipError and error.key == "zip_bad_model"
    assert str(error) == "m.zip: /m is not a trained classifier: its weights have no classification head (c.w)."
    assert HANGUL.search(error.text("ko")) and "m.zip" in error.text("ko")


def test_terms_follow_the_language() -> None:
    error = DataError("data_binary", name="p.csv", kind=Term("a PNG image"))
    assert "looks like a PNG image" in str(error)
    assert "PNG 이미지" in error.text("ko")


def test_an_unknown_key_fails_the_same_way_everywhere() -> None:
    with pytest.raises(KeyError):
        UserFacingError("plain sentence.")
    with pytest.raises(KeyError):
        t("ko", "no_such_key")


def _literal_keys(node: ast.Call, position: int) -> list[str]:
    """The string constants a call passes at position (both branches of `a if c else b`)."""
    if len(node.args) <= position:
        return []
    arg = node.args[position]
    options = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
    return [option.value for option in options if isinstance(option, ast.Constant) and isinstance(option.value, str)]


def test_every_key_the_code_names_exists() -> None:
    """`t(lang, "key")`, `I18N("key")` and the keys of each `Setting(...)` (config.py's schema: help, label and
    bound sentences) in the package all name a key of the catalogue."""
    named = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "t":
                    named += [(path.name, node.lineno, key) for key in _literal_keys(node, 1)]
                elif node.func.id == "I18N":
                    named += [(path.name, node.lineno, key) for key in _literal_keys(node, 0)]
                elif node.func.id == "Setting":
                    keys = _literal_keys(node, 0) + _literal_keys(node, 1)
                    given = [k.value for k in node.keywords if k.arg in SETTING_KEYS]
                    keys += [value.value for value in given if isinstance(value, ast.Constant) and value.value]
                    named += [(path.name, node.lineno, key) for key in keys]
    assert len(named) > 100
    assert not [key for key in named if key[2] not in MESSAGES]


def _korean(error: UserFacingError, name: str, english: str) -> None:
    assert str(error) == english
    assert error.text("en") == english
    korean = error.text("ko")
    assert HANGUL.search(korean) and name in korean, korean


def test_real_data_errors_in_korean(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_table(empty)
    _korean(caught.value, "empty.tsv", "empty.tsv is empty.")

    single = tmp_path / "one_class.tsv"
    single.write_text("text\tlabel\n좋아요\tpos\n최고예요\tpos\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_table(single)
    _korean(
        caught.value,
        "one_class.tsv",
        "one_class.tsv has only one class ('pos') in column 'label'; classification needs at least two.",
    )

    png = tmp_path / "picture.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(DataError) as caught:
        read_table(png)
    assert "PNG 이미지" in caught.value.text("ko") and "picture.csv" in caught.value.text("ko")

    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("text\tlabel\n좋아요\tpos\n별로\tneg\textra\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_table(ragged)
    assert "stray tab characters" in str(caught.value) and "탭" in caught.value.text("ko")


def test_hostile_zip_in_korean(tmp_path: Path) -> None:
    from kobert_demo.serving.export import ModelZipError, import_zip

    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("../evil.json", b"{}")
    with pytest.raises(ModelZipError) as caught:
        import_zip(hostile, tmp_path / "out")
    _korean(caught.value, "hostile.zip", "hostile.zip has an entry with an unsafe path (../evil.json); refused.")


def test_missing_model_folder_in_korean(tmp_path: Path) -> None:
    from kobert_demo.engine.loading import load_classifier

    folder = tmp_path / "no_model"
    folder.mkdir()
    with pytest.raises(BackboneError) as caught:
        load_classifier(folder)
    _korean(caught.value, "no_model", f"{folder} has no config.json, so it is not a model folder.")


def test_missing_run_in_korean(tmp_path: Path) -> None:
    with pytest.raises(RunError) as caught:
        open_run(tmp_path / "not_a_run")
    _korean(
        caught.value,
        "not_a_run",
        f"{tmp_path / 'not_a_run'} is not a run folder (it has no status.json and config.json).",
    )
