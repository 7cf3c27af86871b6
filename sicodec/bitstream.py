"""The .sic container, version 1. All integers little-endian.

    signature   8 bytes   89 'S' 'I' 'C' 0D 0A 1A 0A
    version     u8        1
    header_len  u32       length of the header body
    header      ...       see `Header`
    header_crc  u32       CRC32 of version, header_len and header body
    section*    u32 length, payload, u32 CRC32 of payload

Sections are the coded latents in decoding order (hyperprior: z, y; SIC: z, slice 1, slice 2, ...).
`sections_total` is how many the encoder wrote; a file cut after any complete section is still a
valid file (a progressive prefix), so truncating a file to a lower level is a byte-prefix copy.
The parser checks every length against the remaining data and the image size against the pixel
limit before it allocates anything.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

from .errors import FormatError
from .image import check_pixels

SIGNATURE = b"\x89SIC\r\n\x1a\n"
VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_HEADER = 1 << 24  # ICC profiles are the only large part of a header
COLOUR_RGB, COLOUR_GREY = 0, 1


@dataclass
class Header:
    model: str
    fingerprint: bytes  # 16 bytes: the weights the file was made with
    tables_crc: int  # CRC32 of the coding tables the encoder derived
    width: int
    height: int
    grey: bool = False
    seed: int = 0  # for decoders that sample (SIC); 0 otherwise
    sections_total: int = 0
    icc_profile: bytes | None = None

    def pack(self) -> bytes:
        name = self.model.encode("ascii")
        icc = self.icc_profile or b""
        return b"".join([
            struct.pack("<B", len(name)), name, self.fingerprint,
            struct.pack("<IIIBBQH", self.tables_crc, self.width, self.height,
                        COLOUR_GREY if self.grey else COLOUR_RGB, 0, self.seed, self.sections_total),
            struct.pack("<I", len(icc)), icc,
        ])

    @classmethod
    def unpack(cls, body: bytes) -> "Header":
        r = _Reader(body, "header")
        name = r.take(r.u("<B")).decode("ascii", "replace")
        if not _NAME.match(name):
            raise FormatError("invalid model name in header")
        fingerprint = r.take(16)
        tables_crc, width, height, colour, flags, seed, total = r.u("<IIIBBQH")
        if colour not in (COLOUR_RGB, COLOUR_GREY) or flags != 0:
            raise FormatError("unknown colour or flags in header (file from a newer sicodec?)")
        if width < 1 or height < 1:
            raise FormatError(f"invalid image size {width}x{height} in header")
        check_pixels(width, height)
        icc = r.take(r.u("<I")) or None
        if r.pos != len(body):
            raise FormatError("unexpected bytes at the end of the header")
        return cls(name, fingerprint, tables_crc, width, height, colour == COLOUR_GREY, seed, total, icc)


@dataclass
class SicFile:
    header: Header
    sections: list[bytes] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        body = self.header.pack()
        head = struct.pack("<BI", VERSION, len(body)) + body
        parts = [SIGNATURE, head, struct.pack("<I", zlib.crc32(head))]
        for s in self.sections:
            parts += [struct.pack("<I", len(s)), s, struct.pack("<I", zlib.crc32(s))]
        return b"".join(parts)

    def section_offsets(self) -> list[int]:
        """File size after each section: the byte length of every progressive prefix."""
        size = len(SIGNATURE) + 5 + len(self.header.pack()) + 4
        out = []
        for s in self.sections:
            size += len(s) + 8
            out.append(size)
        return out


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise FormatError(f"file is truncated in the {self.what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str):
        v = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return v[0] if len(v) == 1 else v


def parse(data: bytes) -> SicFile:
    """Bytes -> SicFile, checking signature, version, lengths, limits and every CRC."""
    data = bytes(data)
    if not data:
        raise FormatError("file is empty (0 bytes)")
    if not data.startswith(SIGNATURE):
        if SIGNATURE.startswith(data[: len(SIGNATURE)]) and len(data) < len(SIGNATURE):
            raise FormatError("file is truncated in the signature")
        raise FormatError("not a .sic file (wrong signature)")
    r = _Reader(data, "header")
    r.take(len(SIGNATURE))
    start = r.pos
    version = r.u("<B")
    if version != VERSION:
        raise FormatError(f"unsupported .sic version {version} (this sicodec reads version {VERSION})")
    length = r.u("<I")
    if length > MAX_HEADER:
        raise FormatError("header length is implausibly large")
    body = r.take(length)
    if r.u("<I") != zlib.crc32(data[start : r.pos - 4]):
        raise FormatError("header is corrupted (CRC mismatch)")
    header = Header.unpack(body)
    sections = []
    while r.pos < len(data):
        k = len(sections) + 1
        if k > header.sections_total:
            raise FormatError("unexpected data after the last section")
        r.what = f"section {k}"
        n = r.u("<I")
        payload = r.take(n)
        if r.u("<I") != zlib.crc32(payload):
            raise FormatError(f"section {k} is corrupted (CRC mismatch)")
        sections.append(payload)
    return SicFile(header, sections)
