"""Reader and writer for the IDX format of the MNIST files (LeCun's ``*-idx3-ubyte``).

Header: two zero bytes, a dtype code, the number of dimensions, then one big-endian
uint32 per dimension; the data follows in C order. Any mismatch is reported with
the file's name, because a truncated download is the usual cause.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

# IDX dtype codes -> big-endian numpy dtypes
DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in DTYPES.items()}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a numpy array in native byte order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4:
        raise IDXError(f"{path}: {len(raw)} bytes is too short for an IDX header (truncated file?)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in DTYPES or ndim == 0:
        raise IDXError(f"{path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000 + dtype code + ndim); "
                       "not an IDX file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: header needs {header} bytes, file has {len(raw)} (truncated file?)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = DTYPES[code]
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"{path}: header promises shape {shape} ({expected} bytes), file has {len(raw)} bytes "
                       f"({'truncated' if len(raw) < expected else 'trailing data'}); re-download or re-prepare it")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically (temp file, then rename)."""
    array = np.asarray(array)
    be = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if be not in CODES:
        raise IDXError(f"dtype {array.dtype} has no IDX code; use one of uint8, int8, int16, int32, float32, float64")
    header = struct.pack(">HBB", 0, CODES[be], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    from ..results import atomic_write_bytes  # local import: results does not need data
    atomic_write_bytes(Path(path), header + array.astype(be).tobytes())
