"""Counter-based random numbers: a pure function of (seed, stream, index).

The simulator must give identical values for a timestamp whatever window is asked
for (the vendor-cloud emulation serves arbitrary past ranges), so no random state
is carried from one value to the next. Each value is a hash of its key instead.

A seeded ``np.random.default_rng([seed, day])`` per site-day would also do, but
building a generator costs ~20 us, and a year of 100 sites needs ~36,500 of them
per stream; hashing the whole (site, time) grid at once costs a few ns a value.

The mixer is SplitMix64's finaliser (Steele, Lea & Flood 2014), which passes
BigCrush when fed a counter.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN_U64 = np.uint64(_GOLDEN)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TWO_M53 = 2.0**-53


def _mix_int(x: int) -> int:
    """SplitMix64 finaliser on a Python int (for per-site keys)."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    return x


def stream_key(seed: int, stream: int) -> int:
    """A 64-bit key naming one random stream of one seed."""
    return _mix_int(_mix_int(int(seed) * _GOLDEN + 0x632BE59BD9B4E019) ^ (int(stream) * _GOLDEN))


def stream_keys(seeds, stream: int) -> np.ndarray:
    """Column of keys, shape (n_sites, 1), for broadcasting against an index row."""
    return np.array([stream_key(s, stream) for s in seeds], dtype=np.uint64)[:, None]


def _mix(x: np.ndarray) -> np.ndarray:
    # uint64 arrays wrap on overflow, which is the arithmetic the mixer wants
    x = x ^ (x >> _S30)
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def hash64(keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Hash of each (key, index) pair; broadcasts ``keys`` (S, 1) with ``index`` (K,)."""
    idx = np.asarray(index).astype(np.int64).view(np.uint64)
    return _mix(keys + idx * _GOLDEN_U64)


def uniform(keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Uniform values in (0, 1), one per (key, index)."""
    h = hash64(keys, index)
    return ((h >> _S11).astype(np.float64) + 0.5) * _TWO_M53


def normal(keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Standard normal values, one per (key, index)."""
    return ndtri(uniform(keys, index))


def uniforms(keys: np.ndarray, index: np.ndarray, n: int = 4) -> tuple[np.ndarray, ...]:
    """``n`` independent uniforms in (0, 1) from one hash per (key, index), 64 // n bits each.

    For small per-reading jitter (voltages, frequency, load noise) where 12-16 bits
    are plenty and one hash instead of ``n`` matters at ten million readings.
    """
    bits = 64 // n
    mask, shift, scale = np.uint64((1 << bits) - 1), np.uint64(bits), 2.0**-bits
    h = hash64(keys, index)
    out = []
    for _ in range(n):
        out.append(((h & mask).astype(np.float64) + 0.5) * scale)
        h = h >> shift
    return tuple(out)
