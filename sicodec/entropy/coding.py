"""Entropy coding of integer symbols with constriction's ANS coder.

A `CodingTable` is an integer frequency table over the symbols `offset .. offset + n - 1` plus one
escape symbol. Symbols outside a table's range are never clipped: the escape symbol is coded, then
the exact value with an Elias-gamma code (a bit length, then the bits). Tables are integers, so
encoder and decoder build identical constriction models from them on any machine.

Symbols are coded grouped by table (table 0's symbols in scan order, then table 1's, ...), which
needs only one constriction model per table; the decoder knows every symbol's table beforehand.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np

from ..errors import FormatError, SicodecError

PRECISION_BITS = 16  # table frequencies are integers summing to about 2**PRECISION_BITS
MAX_SYMBOL_MAGNITUDE = 2**40  # a latent beyond this is refused (a broken model), never clipped
_LENGTH_ALPHABET = 48  # Elias-gamma bit lengths 0..47 cover every |symbol| < 2**40
_CHUNK_BITS = 16


def quantize_pmf(pmf: np.ndarray, escape: float) -> np.ndarray:
    """Probabilities (float64) and escape mass -> integer frequencies, each >= 1, escape last."""
    p = np.append(np.asarray(pmf, dtype=np.float64), max(float(escape), 0.0))
    p = np.clip(p, 0.0, None)
    return np.maximum(1, np.round(p / p.sum() * 2.0**PRECISION_BITS)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class CodingTable:
    """Frequencies for symbols offset..offset+len(freqs)-2; the last entry is the escape symbol."""

    offset: int
    freqs: np.ndarray

    @property
    def size(self) -> int:
        return len(self.freqs) - 1

    @cached_property
    def model(self):
        return constriction.stream.model.Categorical(self.freqs.astype(np.float64), perfect=False)

    def bits(self, symbols: np.ndarray) -> float:
        """Information content of `symbols` under this table, escapes' payload included."""
        idx = np.asarray(symbols, dtype=np.int64) - self.offset
        inside = (idx >= 0) & (idx < self.size)
        total = float(self.freqs.sum())
        b = -np.log2(self.freqs[np.where(inside, idx, self.size)] / total).sum()
        return float(b) + sum(_escape_bits(int(s)) for s in np.asarray(symbols)[~inside])


def tables_checksum(tables: list[CodingTable]) -> int:
    """CRC32 over all tables: stored in files so that a decoder deriving other tables refuses loudly."""
    crc = 0
    for t in tables:
        crc = zlib.crc32(np.array([t.offset, len(t.freqs)], dtype="<i8").tobytes(), crc)
        crc = zlib.crc32(t.freqs.astype("<i8").tobytes(), crc)
    return crc


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def _escape_bits(value: int) -> float:
    n = (2 * value if value >= 0 else -2 * value - 1).__add__(1).bit_length() - 1
    return float(np.log2(_LENGTH_ALPHABET) + n)


def _check_range(symbols: np.ndarray) -> None:
    if symbols.size and int(np.abs(symbols).max()) >= MAX_SYMBOL_MAGNITUDE:
        raise SicodecError("a latent value is out of the codable range (the model output is broken for this input)")


def _grouping(table_index: np.ndarray, n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """The coding order (symbols sorted by table, stable) and each table's [start, end) in it."""
    order = np.argsort(table_index, kind="stable")
    return order, np.searchsorted(table_index[order], np.arange(n_tables + 1))


def encode(symbols: np.ndarray, table_index: np.ndarray, tables: list[CodingTable]) -> bytes:
    """Code integer `symbols`, symbol i with `tables[table_index[i]]`, into bytes."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    _check_range(symbols)
    order, bounds = _grouping(table_index, len(tables))
    sym = symbols[order]
    groups, escaped = [], []
    for t, table in enumerate(tables):
        s = sym[bounds[t] : bounds[t + 1]] - table.offset
        outside = (s < 0) | (s >= table.size)
        escaped.append(sym[bounds[t] : bounds[t + 1]][outside])
        groups.append(np.where(outside, table.size, s).astype(np.int32))
    escaped = np.concatenate(escaped) if escaped else np.zeros(0, np.int64)

    coder = constriction.stream.stack.AnsCoder()
    # ANS is a stack: push in the reverse of the decoding order.
    for sizes, values in reversed(_escape_payload(escaped)):
        coder.encode_reverse(values, constriction.stream.model.Uniform(), sizes)
    for t in reversed(range(len(tables))):
        if len(groups[t]):
            coder.encode_reverse(groups[t], tables[t].model)
    return coder.get_compressed().astype("<u4").tobytes()


def _escape_payload(values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Elias-gamma of zigzag(v) + 1: the bit length n (uniform over 48), then n bits in 16-bit chunks."""
    if not len(values):
        return []
    u = _zigzag(values).astype(np.uint64) + np.uint64(1)
    n = np.frexp(u.astype(np.float64))[1].astype(np.int64) - 1  # exact: u < 2**42
    out = [(np.full(len(u), _LENGTH_ALPHABET, np.int32), n.astype(np.int32))]
    for start in range(0, _LENGTH_ALPHABET, _CHUNK_BITS):
        sel = n > start
        if not sel.any():
            break
        width = np.minimum(n[sel] - start, _CHUNK_BITS)
        chunk = (u[sel] >> np.uint64(start)) & ((np.uint64(1) << width.astype(np.uint64)) - np.uint64(1))
        out.append(((np.int64(1) << width).astype(np.int32), chunk.astype(np.int32)))
    return out


def decode(data: bytes, table_index: np.ndarray, tables: list[CodingTable]) -> np.ndarray:
    """Inverse of `encode`: the symbols in their original order. Corrupt data -> FormatError."""
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    if len(data) % 4:
        raise FormatError("coded section length is not a multiple of 4 bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except ValueError as e:
        raise FormatError(f"corrupt coded data ({e})") from None
    order, bounds = _grouping(table_index, len(tables))
    sym = np.empty(len(table_index), dtype=np.int64)
    for t, table in enumerate(tables):
        count = int(bounds[t + 1] - bounds[t])
        if count:
            sym[bounds[t] : bounds[t + 1]] = coder.decode(table.model, count).astype(np.int64) + table.offset
    escape_pos = np.concatenate(
        [np.arange(bounds[t], bounds[t + 1])[sym[bounds[t] : bounds[t + 1]] == table.offset + table.size] for t, table in enumerate(tables)]
    ) if len(tables) else np.zeros(0, np.int64)
    if len(escape_pos):
        n = coder.decode(constriction.stream.model.Uniform(), np.full(len(escape_pos), _LENGTH_ALPHABET, np.int32)).astype(np.int64)
        u = np.uint64(1) << n.astype(np.uint64)
        for start in range(0, _LENGTH_ALPHABET, _CHUNK_BITS):
            sel = n > start
            if not sel.any():
                break
            width = np.minimum(n[sel] - start, _CHUNK_BITS)
            chunk = coder.decode(constriction.stream.model.Uniform(), (np.int64(1) << width).astype(np.int32)).astype(np.uint64)
            u[sel] |= chunk << np.uint64(start)
        values = _unzigzag((u - np.uint64(1)).astype(np.int64))
        if int(np.abs(values).max()) >= MAX_SYMBOL_MAGNITUDE:  # the encoder never writes these
            raise FormatError("corrupt coded data (an escaped value is out of the codable range)")
        sym[escape_pos] = values
    if not coder.is_empty():
        raise FormatError("corrupt coded data (bits left over after decoding)")
    out = np.empty_like(sym)
    out[order] = sym
    return out
