"""The ANS coding layer: exact round trips (escapes included), information bounds, corrupt input."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sicodec.entropy import coding
from sicodec.entropy.coding import CodingTable, decode, encode, quantize_pmf
from sicodec.errors import FormatError, SicodecError


def _tables():
    g = np.exp(-0.5 * (np.arange(-8, 9) / 2.0) ** 2)
    g /= g.sum() * 1.0001
    return [CodingTable(-8, quantize_pmf(g, 1e-4)), CodingTable(0, quantize_pmf(np.array([0.7, 0.2, 0.1]), 1e-6))]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**39), 2**39), st.integers(0, 1)), min_size=0, max_size=300))
def test_round_trip_is_exact_for_any_values(pairs):
    tables = _tables()
    symbols = np.array([p[0] for p in pairs], dtype=np.int64)
    index = np.array([p[1] for p in pairs], dtype=np.int64)
    assert np.array_equal(decode(encode(symbols, index, tables), index, tables), symbols)


def test_extreme_values_are_coded_not_clipped():
    tables = _tables()
    symbols = np.array([0, 2**40 - 1, -(2**40) + 1, 9, -9, 3, 1000], dtype=np.int64)
    index = np.zeros(len(symbols), dtype=np.int64)
    assert np.array_equal(decode(encode(symbols, index, tables), index, tables), symbols)


def test_values_beyond_the_codable_range_are_refused():
    with pytest.raises(SicodecError):
        encode(np.array([2**41]), np.array([0]), _tables())


def test_coded_size_matches_information_content(rng):
    """Actual bits within 0.5 % (plus two words) of the tables' information content."""
    tables = _tables()
    index = rng.integers(0, 2, 200_000)
    sym = np.where(index == 0, np.round(rng.normal(0, 2.0, len(index))), rng.choice(3, len(index), p=[0.7, 0.2, 0.1]))
    sym = sym.astype(np.int64)
    info = sum(tables[t].bits(sym[index == t]) for t in range(2))
    actual = 8 * len(encode(sym, index, tables))
    assert info <= actual <= info * 1.005 + 64


def test_quantize_pmf_gives_every_symbol_a_frequency():
    f = quantize_pmf(np.array([1.0, 0.0, 1e-30]), 0.0)
    assert (f >= 1).all() and f[0] > 60000 and len(f) == 4


def test_checksum_changes_with_any_table():
    a = _tables()
    b = _tables()
    b[1] = CodingTable(0, b[1].freqs + np.array([1, 0, 0, 0]))
    assert coding.tables_checksum(a) == coding.tables_checksum(_tables())
    assert coding.tables_checksum(a) != coding.tables_checksum(b)


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x00", b"abc", bytes(range(64))])
def test_garbage_data_fails_cleanly(data):
    tables = _tables()
    index = np.zeros(100, dtype=np.int64)
    try:
        out = decode(data, index, tables)
    except FormatError:
        return
    assert out.shape == (100,)  # garbage in, garbage out, but never a crash
