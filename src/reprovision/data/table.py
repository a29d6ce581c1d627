"""table: the user's CSV file (data.path), a header row then one row per example; data.target names
the column to predict, every other column is a numeric feature. Read with the csv module, row by row."""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reprovision.data.fetch import MIB, copy_file
from reprovision.data.raw import RawData, RawFile
from reprovision.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)
TABLE_FILE = "table.csv"  # the user's CSV as data/raw keeps it, whatever its own name
# Sanity limits: past them a file is more likely a mistake than a table (csv's own limit of
# 131,072 characters per field stays in force, and data.download.max_mib bounds the file).
MAX_ROWS = 10_000_000
MAX_COLUMNS = 100_000


def fetch_table(path: str, dest: Path, cfg: Any) -> str:
    """Copy the user's CSV into data/raw, within data.download.max_mib."""
    src = Path(path)
    if not src.is_file():
        raise DataError(f"data.path={path!r}: not a file; data=table reads a CSV file with a header row")
    size, limit = src.stat().st_size, cfg.download.max_mib
    if size > limit * MIB:
        raise DataError(f"data.path={path!r}: {size:,} bytes, over data.download.max_mib={limit}; raise the limit")
    copy_file(src, dest / TABLE_FILE)
    return str(src.resolve())


def read_table(raw_dir: Path, cfg: Any, files: tuple[RawFile, ...] = ()) -> RawData:
    """Features float32 (N, F) in file order; the target float32 (regression, the default) or int64
    indices into the sorted distinct labels (data.task=classification)."""
    if not cfg.target:
        raise DataError("data=table needs data.target: the CSV column to predict")
    task = cfg.task or "regression"
    rows = _rows(raw_dir / TABLE_FILE)
    _, header = next(rows, (1, None))
    if header is None:
        raise DataError("table: the CSV file is empty; it needs a header row, then one row per example")
    names = _check_header(header, cfg.target)
    t = names.index(cfg.target)
    features = names[:t] + names[t + 1 :]
    values, targets = array("f"), []
    for line, row in rows:
        if len(row) != len(names):
            raise DataError(f"table: line {line} has {len(row)} fields, the header {len(names)}")
        for name, cell in zip(names, row, strict=True):
            if name != cfg.target:
                values.append(_number(cell, name, line))
        if task == "regression":
            targets.append(_number(row[t], cfg.target, line, " (labels? set data.task=classification)"))
        else:
            targets.append(_present(row[t], cfg.target, line))
    if not targets:
        raise DataError("table: the CSV file has a header row but no data rows")
    x = np.frombuffer(values, dtype=np.float32).reshape(len(targets), len(features))
    if task == "regression":
        y, classes = np.asarray(targets, dtype=np.float32), []
    else:
        y, classes = _labels(targets, cfg.target)
    return RawData(x, y, None, None, classes, "table", task, features, target=cfg.target)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank row, the header first."""
    with path.open("rb") as f:
        reader = csv.reader(_decoded(f), strict=True)
        try:
            for row in reader:
                if reader.line_num > MAX_ROWS + 1:
                    raise DataError(f"table: more than {MAX_ROWS:,} rows; that is past what data=table reads")
                if row:
                    yield reader.line_num, row
        except csv.Error as e:
            raise DataError(f"table: line {reader.line_num}: {e}") from None


def _decoded(lines: Iterator[bytes]) -> Iterator[str]:
    """Each line as text: decoded one by one, so a line that is not UTF-8 is named."""
    for number, line in enumerate(lines, 1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DataError(f"table: line {number} is not UTF-8 text; save the CSV as UTF-8") from None


def _check_header(header: list[str], target: str) -> list[str]:
    names = [h.strip() for h in header]
    if len(names) > MAX_COLUMNS:
        raise DataError(f"table: {len(names):,} columns in the header, over {MAX_COLUMNS:,}")
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"table: column {i + 1} of the header row has no name")
        if name in names[:i]:
            raise DataError(f"table: column {name!r} appears twice in the header row")
    if target not in names:
        raise DataError(f"table: no column {target!r} (data.target); the columns are {', '.join(names)}")
    if len(names) < 2:
        raise DataError(f"table: no feature columns besides the target {target!r}")
    return names


def _present(cell: str, column: str, line: int) -> str:
    text = cell.strip()
    if not text:
        raise DataError(f"table: column {column!r} has no value on line {line}; fill it in or remove the row")
    return text


def _number(cell: str, column: str, line: int, hint: str = "") -> float:
    text = _present(cell, column, line)
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"table: column {column!r} on line {line} is {text!r}, not a number{hint}") from None
    if not math.isfinite(value):
        raise DataError(f"table: column {column!r} on line {line} is {text!r}, not a finite number")
    if abs(value) > FLOAT32_MAX:  # finite here, infinite once stored as float32
        raise DataError(
            f"table: column {column!r} on line {line} is {text!r}, beyond the float32 range the table is "
            f"stored in (±{FLOAT32_MAX:.4g}); rescale that column"
        )
    return value


def _labels(targets: list[str], column: str) -> tuple[np.ndarray, list[str]]:
    """Class indices into the sorted distinct labels: numerically when every label is a number."""
    distinct = set(targets)
    if len(distinct) < 2:
        raise DataError(f"table: column {column!r} holds one value ({targets[0]!r}); classification needs two or more")
    try:
        classes = sorted(distinct, key=_numeric)
    except ValueError:
        classes = sorted(distinct)
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[t] for t in targets], dtype=np.int64), classes


def _numeric(label: str) -> tuple[float, str]:
    """The sort key of a label that is a number ("10" after "9"); ValueError for any other label."""
    value = float(label)
    if not math.isfinite(value):
        raise ValueError(label)
    return value, label
