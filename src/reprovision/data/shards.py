"""A split on disk as shards: a directory of NumPy `.npy` files of bounded size, the rows' inputs
(`x-00000.npy`: images as uint8 (N, C, H, W), table rows, token ids) and their targets
(`y-00000.npy`), described by `index.json`.

Why `.npy` shards: every split of every kind is rows of one fixed shape, so a row is found by
arithmetic (header + row x row bytes), read with one `pread` and nothing decoded; the files are
NumPy's documented format, open in any language, and hold no pickle (`allow_pickle` is never
needed and the header is checked against an allow-list of dtypes before any row is read). The
split is written a shard at a time and read a row, a batch or a block at a time, so no stage
needs a whole split in memory; DVC stores and pushes each shard as a file of its own.

Targets are small (8 bytes a row) and are read whole when the split is opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reprovision.errors import DataError
from reprovision.files import read_json, read_npy_header, write_json

SHARD_BYTES = 64 * 2**20  # inputs per shard file, at most
DTYPES = ("uint8", "int64", "int32", "float32", "float64")  # what a shard may hold: never objects
FORMAT = "npy-shards/1"


class ShardWriter:
    """A split of known targets `y` whose inputs arrive in any order, a row or a run of rows at a
    time: the shard files are made at their full size (at most `shard_bytes` of inputs each) when
    the first row shows the row shape, and each row is written at its place. The writer holds no
    row; `close` refuses a split with a row never written, then writes index.json."""

    def __init__(self, directory: str | Path, y: np.ndarray, shard_bytes: int | None = None) -> None:
        self.dir, self.y = Path(directory), np.ascontiguousarray(y)
        self.shard_bytes = shard_bytes or SHARD_BYTES
        self.dir.mkdir(parents=True, exist_ok=True)
        self.written = np.zeros(len(y), dtype=bool)
        self.fds: list[int] = []

    def _create(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype = shape, dtype
        self.row_bytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        self.per_shard = max(1, self.shard_bytes // max(1, self.row_bytes))
        self.offsets, self.shards = [], []
        for number, start in enumerate(range(0, len(self.y), self.per_shard)):
            rows = min(self.per_shard, len(self.y) - start)
            shard = {"rows": rows, "x": f"x-{number:05d}.npy", "y": f"y-{number:05d}.npy"}
            with (self.dir / shard["y"]).open("wb") as f:
                np.save(f, self.y[start : start + rows])
            with (self.dir / shard["x"]).open("wb") as f:
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                          "shape": (rows, *shape)}  # fmt: skip
                np.lib.format.write_array_header_1_0(f, header)
                self.offsets.append(f.tell())
                f.truncate(f.tell() + rows * self.row_bytes)
            self.fds.append(os.open(self.dir / shard["x"], os.O_WRONLY))
            self.shards.append(shard)

    def put(self, position: int, rows: np.ndarray) -> None:
        """Write `rows` (N, *shape) as the split's rows position .. position + N - 1."""
        if not self.fds:
            self._create(rows.shape[1:], rows.dtype)
        if rows.shape[1:] != self.shape or rows.dtype != self.dtype:
            raise DataError(f"rows of {rows.dtype} {rows.shape[1:]} given to a split of {self.dtype} {self.shape}")
        data = memoryview(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))
        for i in range(len(rows)):  # row by row: a run may cross a shard boundary
            shard, at = divmod(position + i, self.per_shard)
            os.pwrite(self.fds[shard], data[i * self.row_bytes : (i + 1) * self.row_bytes],
                      self.offsets[shard] + at * self.row_bytes)  # fmt: skip
        self.written[position : position + len(rows)] = True

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)
        if not fds or not self.written.all():
            missing = int(np.argmin(self.written)) if len(self.written) else 0
            raise DataError(f"{self.dir}: row {missing} of {len(self.y)} was never written")
        spec = {"x": {"dtype": str(self.dtype), "shape": list(self.shape)},
                "y": {"dtype": str(self.y.dtype), "shape": list(self.y.shape[1:])}}  # fmt: skip
        write_json(self.dir / "index.json", {"format": FORMAT, "rows": len(self.y), **spec, "shards": self.shards})


def save_split(split_dir: str | Path, split: str, x: np.ndarray, y: np.ndarray, shard_bytes: int | None = None) -> None:
    """Arrays already in memory, written as the shards of `split_dir/split`."""
    writer = ShardWriter(Path(split_dir) / split, y, shard_bytes)
    writer.put(0, x)
    writer.close()


def write_rows(directory: str | Path, sources: list[Shards], rows: np.ndarray, max_bytes: int = 2**24) -> None:
    """The split of `rows` of `sources` taken end to end (the first's rows, then the second's), as
    indexing their stacked arrays would give it, written as the shards of `directory` a block of
    at most `max_bytes` at a time: the sources are never in memory."""
    first = sources[0]
    if any((s.x_dtype, s.x_shape) != (first.x_dtype, first.x_shape) for s in sources):
        raise DataError(f"{directory}: splits of different rows cannot be pooled ({[str(s.dir) for s in sources]})")
    rows = np.asarray(rows, dtype=np.int64)
    starts = np.cumsum([0, *(len(s) for s in sources)])
    writer = ShardWriter(directory, np.concatenate([s.y for s in sources])[rows])
    step = max(1, max_bytes // max(1, first.row_bytes))
    for at in range(0, len(rows), step):
        block = rows[at : at + step]
        which = np.searchsorted(starts, block, side="right") - 1
        x = np.empty((len(block), *first.x_shape), first.x_dtype)
        for i, source in enumerate(sources):
            if (mask := which == i).any():
                x[mask] = source.read(block[mask] - starts[i])
        writer.put(at, x)
    writer.close()


def load_split(split_dir: str | Path, split: str) -> dict[str, np.ndarray]:
    """A whole split in memory, as {"x", "y"} (the device-resident path and small data)."""
    shards = Shards(Path(split_dir) / split)
    return {"x": shards.inputs(), "y": shards.y}


class Shards:
    """One split's shards, checked on opening: the format, the file names, each header's dtype
    (from `DTYPES`), row shape and length, and each file's size. Rows are read with `pread`, so
    a Shards object may be shared by DataLoader worker processes."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        where = f"{self.dir}/index.json"
        try:
            index = read_json(self.dir / "index.json")
        except (OSError, ValueError) as e:
            raise DataError(f"{where} cannot be read ({e}); rerun the split stage (dvc repro split)") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise DataError(f"{where} is not a {FORMAT} index; rerun the split stage (dvc repro split)")
        self.x_dtype, self.x_shape = _spec(index, "x", where)
        y_dtype, y_shape = _spec(index, "y", where)
        self.row_bytes = self.x_dtype.itemsize * int(np.prod(self.x_shape, dtype=np.int64))
        self.files, self.offsets, ys = [], [], []
        for number, shard in enumerate(index.get("shards", [])):
            names = (f"x-{number:05d}.npy", f"y-{number:05d}.npy")
            if (shard.get("x"), shard.get("y")) != names or not isinstance(shard.get("rows"), int):
                raise DataError(f"{where}: shard {number} is not named {names[0]}; rerun the split stage")
            self.files.append(self.dir / names[0])
            self.offsets.append(_header(self.files[-1], self.x_dtype, (shard["rows"], *self.x_shape)))
            y_file = self.dir / names[1]
            _header(y_file, y_dtype, (shard["rows"], *y_shape))
            ys.append(np.load(y_file, allow_pickle=False))
        if not ys:
            raise DataError(f"{where} lists no shards; rerun the split stage")
        self.y = np.concatenate(ys)
        if len(self.y) != index.get("rows"):
            raise DataError(f"{where} says {index.get('rows')} rows, its shards {len(self.y)}; rerun the split stage")
        self.starts = np.cumsum([0, *(len(y) for y in ys)])
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.x_shape)

    def __getitem__(self, rows) -> np.ndarray:
        """Inputs as from an array, read on demand: one row (an int), a slice, or rows."""
        if isinstance(rows, int | np.integer):
            return self.read([rows])[0]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:  # a run of rows (evaluate's and the baselines' batches): a call per shard
                return self.span(start, stop)
            rows = range(start, stop, step)
        return self.read(rows)

    def __getstate__(self) -> dict:  # to worker processes: without the open files
        return {**self.__dict__, "_fds": {}}

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self.files[shard], os.O_RDONLY)
        return self._fds[shard]

    def read(self, rows) -> np.ndarray:
        """The inputs of `rows` (any order, repeats allowed) as one array."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range 0..{len(self) - 1}")
        out = np.empty((len(rows), *self.x_shape), self.x_dtype)
        shards = np.searchsorted(self.starts, rows, side="right") - 1
        view = out.reshape(len(rows), -1).view(np.uint8)
        for i, (row, shard) in enumerate(zip(rows.tolist(), shards.tolist(), strict=True)):
            offset = self.offsets[shard] + (row - int(self.starts[shard])) * self.row_bytes
            os.preadv(self._fd(shard), [view[i]], offset)
        return out

    def blocks(self, max_bytes: int = 2**24) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(inputs, targets) in row order, at most `max_bytes` of inputs at a time."""
        step = max(1, max_bytes // max(1, self.row_bytes))
        for start in range(0, len(self), step):
            end = min(start + step, len(self))
            yield self.span(start, end), self.y[start:end]

    def span(self, start: int, end: int) -> np.ndarray:
        """The inputs of rows start .. end - 1, read with one call per shard they cross (a row
        at a time, a table's short rows would cost a call each)."""
        out = np.empty((max(0, end - start), *self.x_shape), self.x_dtype)
        flat = out.reshape(-1).view(np.uint8)
        for shard, (first, last) in enumerate(zip(self.starts[:-1], self.starts[1:], strict=True)):
            lo, hi = max(int(first), start), min(int(last), end)
            if hi > lo:
                part = flat[(lo - start) * self.row_bytes : (hi - start) * self.row_bytes]
                os.preadv(self._fd(shard), [part], self.offsets[shard] + (lo - int(first)) * self.row_bytes)
        return out

    def inputs(self) -> np.ndarray:
        """Every row's inputs in one array."""
        return self.span(0, len(self))

    def close(self) -> None:
        for fd in self.__dict__.get("_fds", {}).values():  # also for one refused half-way through opening
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        self.close()


def _spec(index: dict, key: str, where: str) -> tuple[np.dtype, tuple[int, ...]]:
    spec = index.get(key)
    if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES:
        raise DataError(f"{where}: {key} must be one of {', '.join(DTYPES)}; rerun the split stage")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
        raise DataError(f"{where}: {key} has no valid row shape; rerun the split stage")
    return np.dtype(spec["dtype"]), tuple(shape)


def _header(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """The byte offset of `path`'s rows, once its header says `dtype` and `shape` in C order and
    its size matches: a file that says anything else is refused before a row is read."""
    try:
        with path.open("rb") as f:
            found_shape, fortran, found_dtype = read_npy_header(f)
            offset = f.tell()
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npy shard ({e}); rerun the split stage") from None
    expected = offset + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if found_dtype != dtype or tuple(found_shape) != shape or fortran or path.stat().st_size != expected:
        raise DataError(
            f"{path} holds {found_dtype} {tuple(found_shape)}, not the {dtype} {shape} index.json lists; "
            "rerun the split stage"
        )
    return offset
