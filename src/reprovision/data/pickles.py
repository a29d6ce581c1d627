"""Unpickling downloaded data: only once its checksum matched, and then only numpy arrays and plain
containers (lists, dicts, numbers, bytes); any other global a pickle names is refused."""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

from reprovision.errors import DataError

# What rebuilding an ndarray takes (plain and object arrays alike), in numpy 1 and numpy 2 spellings.
ARRAY_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, fmt: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self.fmt = fmt

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ARRAY_GLOBALS:
            raise DataError(f"refusing to unpickle {module}.{name}: not part of the {self.fmt} format")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def unpickle_arrays(data: bytes | BinaryIO, name: str, fmt: str, encoding: str = "bytes") -> Any:
    """Unpickle numpy arrays and plain containers from verified file `name`; `fmt` names its format.
    `encoding` decodes Python 2 strings ("bytes" keeps them bytes, as CIFAR's keys are)."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _ArrayUnpickler(file, fmt, encoding).load()
    except DataError as e:
        raise DataError(f"{name}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f"{name}: not a readable {fmt} pickle ({e or type(e).__name__})") from None
