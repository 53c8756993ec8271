"""Reader and writer for CASIA-HWDB1.x offline ``.gnt`` files (one file per writer).

A file is records back to back, nothing else::

    uint32 LE  sample size = 10 + W*H (the whole record, this field included)
    2 bytes    tag code, GB2312/GBK, high byte first ("啊" is B0 A1)
    uint16 LE  width W
    uint16 LE  height H
    W*H uint8  pixels, row by row, background 255

A malformed record raises ``GNTError`` naming the file and the record's byte offset.
With ``skip_bad=True`` bad records are skipped and collected instead. How reading goes
on after one: a record whose size field agrees with its width and height but whose
tag does not decode (or whose bitmap is empty) is skipped alone, since its end is
known; a size field that disagrees with 10+W*H, or a truncated record, leaves no
trustworthy record boundary, so the rest of the file is dropped (one error, which
says how many bytes were lost). Guessing a resync point could turn pixel bytes into
bogus samples, and a mislabelled sample is worse than a missing one.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

HEADER = struct.Struct("<I2sHH")  # size, tag (big-endian code as raw bytes), width, height
GNTSample = tuple[str, np.ndarray]  # (tag, bitmap uint8 (H, W))


class GNTError(ValueError):
    """A malformed GNT file or record; the message names the file and byte offset."""

    def __init__(self, path: str | os.PathLike, offset: int, problem: str) -> None:
        self.path, self.offset, self.problem = Path(path), offset, problem
        super().__init__(f"{self.path}: byte offset {offset}: {problem}")


def encode_tag(tag: str) -> bytes:
    """The 2-byte GBK code of one character, high byte first; ValueError if it has none."""
    try:
        code = tag.encode("gbk")
    except UnicodeEncodeError:
        code = b""
    if len(tag) != 1 or len(code) != 2:
        raise ValueError(f"GNT tag {tag!r} is not one character with a 2-byte GB2312/GBK code")
    return code


def decode_tag(code: bytes) -> str | None:
    """The character of a 2-byte GBK code, or None when it is not one double-byte character."""
    try:
        tag = code.decode("gbk")
    except UnicodeDecodeError:
        return None
    return tag if len(tag) == 1 else None  # two ASCII bytes decode to two characters


def gnt_bytes(samples: Iterable[GNTSample]) -> bytes:
    """The GNT encoding of ``samples`` (tag, uint8 bitmap (H, W)), in memory."""
    parts = []
    for tag, bitmap in samples:
        bitmap = np.asarray(bitmap)
        if bitmap.dtype != np.uint8 or bitmap.ndim != 2 or 0 in bitmap.shape:
            raise ValueError(f"GNT bitmap for {tag!r} must be a non-empty 2-D uint8 array, "
                             f"got {bitmap.dtype} {bitmap.shape}")
        h, w = bitmap.shape
        if max(h, w) > 0xFFFF:
            raise ValueError(f"GNT bitmap for {tag!r} is {h}x{w}; width and height must fit in uint16")
        parts.append(HEADER.pack(HEADER.size + h * w, encode_tag(tag), w, h))
        parts.append(np.ascontiguousarray(bitmap).tobytes())
    return b"".join(parts)


def write_gnt(path: str | os.PathLike, samples: Iterable[GNTSample]) -> None:
    """Write ``samples`` as one GNT file, atomically (temp file, then rename)."""
    from ..results import atomic_write_bytes  # local import: results does not need data
    atomic_write_bytes(Path(path), gnt_bytes(samples))


def _parse_header(path: Path, buf: memoryview, pos: int) -> tuple[int, str | None, int, int]:
    """(record size, tag or None, width, height) at ``pos``; GNTError when the record cannot be delimited."""
    if len(buf) - pos < HEADER.size:
        raise GNTError(path, pos, f"truncated record: {len(buf) - pos} bytes left, a header needs {HEADER.size}")
    size, code, w, h = HEADER.unpack_from(buf, pos)
    if size != HEADER.size + w * h:
        raise GNTError(path, pos, f"size field {size} disagrees with 10 + W*H = {HEADER.size + w * h} "
                                  f"(W={w}, H={h}); corrupt file or not a GNT file")
    if len(buf) - pos < size:
        raise GNTError(path, pos, f"truncated record: needs {size} bytes, {len(buf) - pos} left")
    return size, decode_tag(bytes(code)), w, h


def _check_record(path: Path, pos: int, code: bytes, tag: str | None, w: int, h: int) -> None:
    if tag is None:
        raise GNTError(path, pos, f"undecodable tag code {code.hex(' ').upper()} (not a GB2312/GBK character)")
    if w == 0 or h == 0:
        raise GNTError(path, pos, f"empty bitmap {w}x{h} for tag {tag!r}")


def iter_gnt(path: str | os.PathLike, skip_bad: bool = False,
             errors: list[GNTError] | None = None) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield ``(tag, bitmap (H, W) uint8, byte offset)`` for each record of a GNT file.

    Args:
        path: the ``.gnt`` file; it is read whole (HWDB files are a few MB each).
        skip_bad: skip malformed records instead of raising (see the module docstring for
            how reading resumes after one).
        errors: with ``skip_bad``, each skipped problem is appended here as a ``GNTError``.

    Raises:
        GNTError: an empty file or a malformed record (unless ``skip_bad``).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GNT file {path} does not exist")
    buf = memoryview(path.read_bytes())
    if len(buf) == 0:
        _fail(GNTError(path, 0, "empty file (0 bytes); incomplete copy?"), skip_bad, errors)
    pos = 0
    while pos < len(buf):
        try:
            size, tag, w, h = _parse_header(path, buf, pos)
        except GNTError as e:
            if skip_bad:  # the record's end is unknown: the rest of the file goes with it
                e = GNTError(path, pos, f"{e.problem}; skipped the last {len(buf) - pos} bytes of the file")
            _fail(e, skip_bad, errors)
            return
        try:
            _check_record(path, pos, bytes(buf[pos + 4:pos + 6]), tag, w, h)
        except GNTError as e:
            _fail(e, skip_bad, errors)
        else:
            pixels = np.frombuffer(buf, np.uint8, w * h, pos + HEADER.size).reshape(h, w)
            yield tag, pixels, pos
        pos += size


def _fail(error: GNTError, skip_bad: bool, errors: list[GNTError] | None) -> None:
    if not skip_bad:
        raise error
    if errors is not None:
        errors.append(error)


def read_gnt(path: str | os.PathLike, skip_bad: bool = False) -> list[GNTSample]:
    """All ``(tag, bitmap)`` samples of a GNT file (bitmaps are read-only views of one buffer)."""
    return [(tag, bitmap) for tag, bitmap, _ in iter_gnt(path, skip_bad)]
