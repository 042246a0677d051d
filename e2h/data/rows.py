"""Raw rows from a data source (a local file or a Hugging Face hub id), and field checks that name file, line, field.

A *source* is a string::

    tests/data/math500.jsonl              local JSONL, read line by line (errors give the true line number)
    data/prm800k/phase2_train.parquet     local .parquet / .json / .csv, loaded with ``datasets``
    HuggingFaceH4/MATH-500:test           hub id, optionally ":split" (default "train"), loaded with ``datasets``

Local JSONL is parsed here rather than by ``datasets.load_dataset("json")``: Arrow reports a bad line without its
number and silently unifies mistyped fields, and every loader below needs "file:line: field" errors. Rows loaded
through ``datasets`` are numbered from 1 in file order, so the same messages point at the row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from e2h.config import resolve_shipped_file
from e2h.jsonl import RecordError, read_jsonl

_DATASETS_BUILDERS = {".parquet": "parquet", ".json": "json", ".csv": "csv", ".arrow": "arrow"}
_LOCAL_SUFFIXES = {".jsonl", *_DATASETS_BUILDERS}


def is_local(source: str) -> bool:
    """A path on disk (or meant to be one) rather than a hub id."""
    return (os.path.exists(source) or source.startswith((".", "/", "~"))
            or Path(source).suffix.lower() in _LOCAL_SUFFIXES)


def iter_rows(source: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield ``(where, line, row)`` for every row of ``source``; ``where`` is what error messages name.

    >>> next(iter_rows("tests/data/math500.jsonl"))[:2]
    ('tests/data/math500.jsonl', 1)
    """
    if is_local(source):
        path = resolve_shipped_file(source)  # a config's "tests/data/..." works from any working directory
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {source}")
        builder = _DATASETS_BUILDERS.get(path.suffix.lower())
        if builder is None:  # .jsonl and anything unknown: one JSON object per line
            for line, row in read_jsonl(path):
                yield source, line, row
            return
        dataset = _load_dataset(builder, data_files=str(path), split="train")
    else:
        name, _, split = source.partition(":")
        dataset = _load_dataset(name, split=split or "train")
    for index, row in enumerate(dataset, start=1):
        yield source, index, dict(row)


def _load_dataset(*args, **kwargs):
    try:
        from datasets import load_dataset
    except ImportError as err:  # pragma: no cover - datasets is a core dependency
        raise ImportError("loading parquet/json/csv files or hub ids needs `pip install datasets`") from err
    return load_dataset(*args, **kwargs)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
               dict: "an object", type(None): "null"}


def field(row: dict, key: str, types: type | tuple[type, ...], where: str, line: int, *, name: str | None = None,
          optional: bool = False, default: Any = None) -> Any:
    """``row[key]`` checked against ``types``; a missing or mistyped field raises RecordError naming it.

    ``name`` is the dotted path shown in the message (e.g. ``label.steps[2].completions[0].rating``). JSON
    ``true`` is never accepted as an integer.
    """
    name = name or key
    if key not in row:
        if optional:
            return default
        raise RecordError(where, line, f"missing field '{name}'")
    value = row[key]
    types = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise RecordError(where, line, f"field '{name}' should be {wanted}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def normalize_problem_text(text: str) -> str:
    """The key two copies of one problem share: whitespace runs collapsed (PRM800K and MATH differ in spacing)."""
    return " ".join(text.split())
