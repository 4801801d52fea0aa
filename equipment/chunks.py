"""Lossless codec for a chunk of one tag's telemetry samples (typically an hour), and its content hash.

Every column of a sample row is carried exactly: source time (the key), server time (nullable),
value (nullable double, bit for bit: NaN payloads, infinities and -0.0 included), OPC UA status code
and which clock the time came from. Columns are stored one after the other:

- times as second-order differences (a steady sampling rate gives zeros), server time as its offset
  from the source time;
- values as scaled decimal integers when every value of the chunk is exactly a decimal with at most
  ``MAX_DECIMALS`` digits (instruments report at a fixed resolution), differenced; otherwise as the
  XOR of each value's IEEE 754 bits with the previous value's;
- every integer stream zigzag-encoded, its 8 bytes split into byte planes, and the whole chunk
  compressed with zlib.

The hash is SHA-256 of a canonical, codec-independent serialisation of the decoded samples, so a
verifier decodes the stored bytes and recomputes it: any change of the payload that alters a sample,
or of the stored hash, shows.
"""
from __future__ import annotations

import hashlib
import math
import operator
import struct
import sys
import zlib
from array import array
from itertools import accumulate, repeat
from typing import NamedTuple, Sequence

FORMAT_VERSION = 1
MAX_DECIMALS = 9
HASH_DOMAIN = b"nkmes/telemetry-chunk/1"
_U64 = (1 << 64) - 1
TIME_LIMIT_US = 1 << 61  # about 73,000 years either side of 1970: second differences stay within 64 bits
_HEADER = struct.Struct("<BIq")  # format version, sample count, first source time
_LITTLE = sys.byteorder == "little"


class Sample(NamedTuple):
    """One stored sample, wherever it lives (a row or a chunk)."""

    tag_id: int
    source_us: int
    server_us: int | None
    value: float | None
    status_code: int
    time_source: int


class ChunkError(ValueError):
    """A payload that does not decode (corrupt, truncated, or of an unknown format)."""


def _le(arr: array) -> bytes:
    if not _LITTLE:
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _from_le(typecode: str, data: bytes) -> array:
    arr = array(typecode)
    arr.frombytes(data)
    if not _LITTLE:
        arr.byteswap()
    return arr


def _zigzag(values: Sequence[int]) -> array:
    return array("Q", [((v << 1) ^ (v >> 63)) & _U64 for v in values])


def _unzigzag(values: array) -> list[int]:
    return [(z >> 1) ^ -(z & 1) for z in values]


def _planes(data: bytes) -> bytes:
    return b"".join(data[k::8] for k in range(8))


def _unplanes(data: bytes) -> bytes:
    n = len(data) // 8
    out = bytearray(len(data))
    for k in range(8):
        out[k::8] = data[k * n:(k + 1) * n]
    return bytes(out)


def _int_stream(values: Sequence[int]) -> bytes:
    """Signed 64-bit integers, differenced once, zigzagged, in byte planes."""
    deltas = [b - a for a, b in zip([0, *values[:-1]], values)]
    return _planes(_le(_zigzag(deltas)))


def _read_int_stream(data: bytes, n: int) -> list[int]:
    return list(accumulate(_unzigzag(_from_le("Q", _unplanes(data[:8 * n])))))


def _mask(values: Sequence[object]) -> bytes:
    return bytes(v is not None for v in values)


def _decimal_scale(values: list[float]) -> int | None:
    """The fewest decimals k such that every value is exactly round(v * 10**k) / 10**k, if any."""
    if not values:
        return 0
    if not all(math.isfinite(v) for v in values):
        return None
    want = array("d", values).tobytes()
    probe = values[:64]
    for k in range(MAX_DECIMALS + 1):
        scale = 10 ** k
        if any(abs(v) * scale >= 2 ** 53 for v in probe):
            return None
        if array("d", [round(v * scale) / scale for v in probe]).tobytes() != array("d", probe).tobytes():
            continue
        if max(abs(v) for v in values) * scale >= 2 ** 53:
            return None
        if array("d", [round(v * scale) / scale for v in values]).tobytes() == want:
            return k
    return None


def encode(samples: Sequence[Sample]) -> bytes:
    """Compress samples of one tag, in strictly increasing source time, into a payload."""
    n = len(samples)
    if n == 0:
        raise ChunkError("a chunk holds at least one sample")
    source = [s.source_us for s in samples]
    if any(b <= a for a, b in zip(source, source[1:])):
        raise ChunkError("samples of a chunk must be in strictly increasing source time")
    times = [*source, *(s.server_us for s in samples if s.server_us is not None)]
    if min(times) < -TIME_LIMIT_US or max(times) >= TIME_LIMIT_US:
        raise ChunkError("a sample time lies outside the range a chunk can hold")
    first_deltas = [b - a for a, b in zip(source, source[1:])]
    parts = [_HEADER.pack(FORMAT_VERSION, n, source[0]), _int_stream(first_deltas)]
    parts.append(_mask([s.server_us for s in samples]))
    parts.append(_int_stream([s.server_us - s.source_us for s in samples if s.server_us is not None]))
    parts.append(_mask([s.value for s in samples]))
    present = [s.value for s in samples if s.value is not None]
    scale = _decimal_scale(present)
    if scale is not None:
        parts.append(bytes([scale]))
        factor = 10 ** scale
        parts.append(_int_stream([round(v * factor) for v in present]))
    else:
        parts.append(bytes([255]))
        bits = _from_le("Q", _le(array("d", present)))
        xored = array("Q", [b ^ a for a, b in zip([0, *bits[:-1]], bits)])
        parts.append(_planes(_le(xored)))
    parts.append(_int_stream([s.status_code for s in samples]))
    parts.append(_int_stream([s.time_source for s in samples]))
    return zlib.compress(b"".join(parts), 9)


def decode(payload: bytes, tag_id: int) -> list[Sample]:
    """The samples of a payload made by ``encode``."""
    try:
        body = zlib.decompress(payload)
        version, n, first = _HEADER.unpack_from(body, 0)
        if version != FORMAT_VERSION:
            raise ChunkError(f"unknown chunk format {version}")
        pos = _HEADER.size

        def take(size: int) -> bytes:
            nonlocal pos
            if pos + size > len(body):
                raise ChunkError("truncated chunk")
            piece = body[pos:pos + size]
            pos += size
            return piece

        deltas = _read_int_stream(take(8 * (n - 1)), n - 1)
        source = list(accumulate(deltas, initial=first))
        server_mask = take(n)
        offsets = iter(_read_int_stream(take(8 * sum(server_mask)), sum(server_mask)))
        server = [s + next(offsets) if m else None for s, m in zip(source, server_mask)]
        value_mask = take(n)
        count = sum(value_mask)
        scale = take(1)[0]
        if scale == 255:
            bits = array("Q", accumulate(_from_le("Q", _unplanes(take(8 * count))), operator.xor))
            present = list(_from_le("d", _le(bits)))
        elif scale <= MAX_DECIMALS:
            factor = 10 ** scale
            present = [m / factor for m in _read_int_stream(take(8 * count), count)]
        else:
            raise ChunkError("unknown value encoding")
        values_iter = iter(present)
        values = [next(values_iter) if m else None for m in value_mask]
        status = _read_int_stream(take(8 * n), n)
        time_source = _read_int_stream(take(8 * n), n)
        if pos != len(body):
            raise ChunkError("trailing bytes after the chunk")
    except (zlib.error, struct.error, StopIteration, OverflowError) as exc:
        raise ChunkError(f"chunk does not decode: {exc}") from None
    return list(map(Sample._make, zip(repeat(tag_id, n), source, server, values, status, time_source)))


def content_hash(tag_id: int, samples: Sequence[Sample]) -> str:
    """SHA-256 (hex) of the samples themselves, independent of how they are encoded."""
    digest = hashlib.sha256(HASH_DOMAIN)
    digest.update(struct.pack("<qq", tag_id, len(samples)))
    digest.update(_le(array("q", [s.source_us for s in samples])))
    digest.update(_mask([s.server_us for s in samples]))
    digest.update(_le(array("q", [s.server_us or 0 for s in samples])))
    digest.update(_mask([s.value for s in samples]))
    digest.update(_le(array("d", [0.0 if s.value is None else s.value for s in samples])))
    digest.update(_le(array("q", [s.status_code for s in samples])))
    digest.update(_le(array("q", [s.time_source for s in samples])))
    return digest.hexdigest()
