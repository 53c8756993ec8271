"""Reader and writer for the IDX format of the MNIST files (LeCun's ``*-idx3-ubyte``).

Header: two zero bytes, a dtype code, the number of dimensions, then one big-endian
uint32 per dimension; the data follows in C order. Any mismatch is reported with
the file's name, because a truncated download is the usual cause.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

# IDX dtype codes -> big-endian numpy dtypes
DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in DTYPES.items()}


class DataError(ValueError):
    """A data file that is missing or malformed; the message names the file, the fault and the fix."""


class IDXError(DataError):
    """A file that is not a well-formed IDX file."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file that is not there (also a ``FileNotFoundError``, for callers that catch that)."""


def _read_bytes(path: Path, fix: str) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:  # gzip names no file; a cut download gives EOFError
        raise IDXError(f"{path}: bad gzip file ({type(e).__name__}: {e}); {fix}") from e


def read_idx(path: str | os.PathLike, fix: str = "re-download it") -> np.ndarray:
    """Read an IDX file (plain, or gzip-compressed when its name ends in ``.gz``).

    Args:
        path: the file.
        fix: how to repair a bad file, appended to every error message.

    Returns:
        The array, in native byte order.

    Raises:
        MissingDataError: no such file.
        IDXError: bad gzip data, bad magic number, truncated file or trailing data.
    """
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"IDX file {path} does not exist; {fix}")
    raw = _read_bytes(path, fix)
    if len(raw) < 4:
        raise IDXError(f"{path}: truncated: {len(raw)} bytes is too short for an IDX header; {fix}")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in DTYPES or ndim == 0:
        gz = " (the data is gzip-compressed: name the file *.gz)" if raw[:2] == b"\x1f\x8b" else ""
        raise IDXError(f"{path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000 + dtype code + ndim): "
                       f"not an IDX file{gz}; {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated: the header needs {header} bytes, the file has {len(raw)}; {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = DTYPES[code]
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"{path}: {'truncated' if len(raw) < expected else 'trailing data'}: the header promises "
                       f"shape {shape}, expected {expected} bytes, got {len(raw)}; {fix}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` encoded as an IDX file."""
    array = np.asarray(array)
    be = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if be not in CODES:
        raise IDXError(f"dtype {array.dtype} has no IDX code; use one of uint8, int8, int16, int32, float32, float64")
    header = struct.pack(">HBB", 0, CODES[be], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(be).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically (temp file, then rename)."""
    from ..results import atomic_write_bytes  # local import: results does not need data
    atomic_write_bytes(Path(path), idx_bytes(array))
