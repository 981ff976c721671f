"""CRC-32C (Castagnoli) for moto, which computes S3's CRC32C checksums with the `crc32c` package
and silently falls back to plain CRC-32 when it is missing. The S3 tests put this directory on
PYTHONPATH so moto's full-object and composite CRC32C values are real CRC-32C.

The checksum comes from google-crc32c (a C extension, several GB/s) when it is importable: the test
harness and the replication benchmark put `.venv-tools/moto-crc32c`, where `make test` installs it,
on PYTHONPATH after this directory. (The `crc32c` package itself cannot be used: it is a package of
the same name as this module, and loading it from here breaks its relative imports.) Otherwise the
checksum is computed here: with numpy, 4096 interleaved blocks are run as vector lanes and their
CRCs combined (CRC is linear over GF(2)); without numpy, one byte at a time. Every path checks
itself against the standard check value at import.
"""
try:
    import google_crc32c as _google

    if _google.value(b"123456789") != 0xE3069283:
        _google = None
except Exception:  # noqa: BLE001 - not installed, or broken: the local paths below
    _google = None

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
    if _google is not None:
        return _google.extend(value, bytes(data)) if value else _google.value(bytes(data))
    return _crc32c_local(data, value)


assert _crc32c_local(b"123456789") == 0xE3069283
if _np is not None:
    _sample = bytes((i * 7919 + 13) & 0xFF for i in range(16 * _LANES + 77))
    assert _crc32c_local(_sample) == _crc32c_local(_sample, lanes=False)
