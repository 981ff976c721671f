"""CRC-32C (Castagnoli) for moto, which computes S3's CRC32C checksums with the `crc32c` package
and silently falls back to plain CRC-32 when it is missing. The S3 tests put this directory on
PYTHONPATH so moto's full-object and composite CRC32C values are real CRC-32C.

A real `crc32c` package elsewhere on sys.path is used when present. Otherwise the checksum is
computed here: with numpy, 4096 interleaved blocks are run as vector lanes and their CRCs combined
(CRC is linear over GF(2)); without numpy, one byte at a time. Both paths check themselves against
the standard check value at import.
"""
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_real():
    paths = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("crc32c", paths)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_real = _load_real()

_POLY = 0x82F63B78
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)

try:
    import numpy as _np
    _NP_TABLE = _np.array(_TABLE, dtype=_np.uint32)
except Exception:  # noqa: BLE001 - any numpy trouble means the portable path
    _np = None

_LANES = 4096


def _bytes_raw(state, data):
    """Runs the register over data; no pre- or post-inversion."""
    table = _TABLE
    for byte in data:
        state = table[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state


def _zeros_operator(length):
    """The 32 columns of the linear map 'run the register over `length` zero bytes'."""
    columns = []
    table = _TABLE
    for bit in range(32):
        state = 1 << bit
        for _ in range(length):
            state = table[state & 0xFF] ^ (state >> 8)
        columns.append(state)
    return columns


def _apply(columns, state):
    result = 0
    bit = 0
    while state:
        if state & 1:
            result ^= columns[bit]
        state >>= 1
        bit += 1
    return result


def _lanes_raw(state, data):
    block = len(data) // _LANES
    covered = block * _LANES
    rows = _np.frombuffer(data, dtype=_np.uint8, count=covered).reshape(_LANES, block).T.copy()
    lanes = _np.zeros(_LANES, dtype=_np.uint32)
    for row in rows:
        lanes = _NP_TABLE[(lanes ^ row) & 0xFF] ^ (lanes >> 8)
    shift = _zeros_operator(block)
    for value in lanes.tolist():
        state = _apply(shift, state) ^ value
    return _bytes_raw(state, data[covered:])


def _crc32c_local(data, value=0, lanes=True):
    data = bytes(data)
    state = value ^ 0xFFFFFFFF
    if lanes and _np is not None and len(data) >= 16 * _LANES:
        state = _lanes_raw(state, data)
    else:
        state = _bytes_raw(state, data)
    return state ^ 0xFFFFFFFF


def crc32c(data, value=0):
    if _real is not None:
        return _real.crc32c(data, value)
    return _crc32c_local(data, value)


assert _crc32c_local(b"123456789") == 0xE3069283
if _np is not None:
    _sample = bytes((i * 7919 + 13) & 0xFF for i in range(16 * _LANES + 77))
    assert _crc32c_local(_sample) == _crc32c_local(_sample, lanes=False)
