"""The .sic container: round trip, progressive prefixes, and hostile files failing cleanly."""

import struct
import zlib

import numpy as np
import pytest

import sicodec
from sicodec.bitstream import SIGNATURE, Header, SicFile, parse
from sicodec.errors import FormatError, LimitError, SicodecError


def _file(sections=(b"zzzz", b"yyyyyyyy", b"s3s3"), **kw):
    h = Header(model="hyperprior-q4", fingerprint=bytes(range(16)), tables_crc=123, width=768, height=512,
               seed=42, sections_total=len(sections), icc_profile=b"icc" * 5, **kw)
    return SicFile(h, list(sections))


def test_round_trip():
    f = _file()
    g = parse(f.to_bytes())
    assert g.header == f.header and g.sections == f.sections
    assert f.section_offsets()[-1] == len(f.to_bytes())


def test_every_section_boundary_is_a_valid_prefix_and_every_other_cut_is_an_error():
    f = _file()
    data = f.to_bytes()
    ends = set(f.section_offsets())
    header_end = f.section_offsets()[0] - len(f.sections[0]) - 8
    for cut in range(len(data)):
        prefix = data[:cut]
        if cut == header_end or cut in ends:
            assert len(parse(prefix).sections) == [header_end, *sorted(ends)].index(cut)
        else:
            with pytest.raises(FormatError):
                parse(prefix)


def test_every_single_bit_flip_is_detected():
    data = _file().to_bytes()
    for i in range(len(data)):
        for bit in (0, 5):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(SicodecError):
                parse(bytes(bad))


def _rebuild(body: bytes, rest: bytes = b"") -> bytes:
    head = struct.pack("<BI", 1, len(body)) + body
    return SIGNATURE + head + struct.pack("<I", zlib.crc32(head)) + rest


def test_huge_dimensions_are_refused_before_allocating():
    h = _file().header
    h.width, h.height = 2**31, 2**31
    with pytest.raises(LimitError):
        parse(_rebuild(h.pack()))


def test_huge_section_length_is_refused():
    data = _rebuild(_file().header.pack(), struct.pack("<I", 2**32 - 1) + b"abc")
    with pytest.raises(FormatError, match="truncated"):
        parse(data)


def test_huge_header_length_is_refused():
    with pytest.raises(FormatError):
        parse(SIGNATURE + struct.pack("<BI", 1, 2**32 - 1) + b"\0" * 100)


def test_unknown_version_and_foreign_files():
    data = bytearray(_file().to_bytes())
    data[8] = 2
    with pytest.raises(FormatError, match="version 2"):
        parse(bytes(data))
    for foreign in (b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 50, b"GIF89a", SIGNATURE[:4]):
        with pytest.raises(FormatError):
            parse(foreign)


def test_extra_sections_are_refused():
    f = _file()
    f.header.sections_total = 1
    with pytest.raises(FormatError, match="after the last section"):
        parse(f.to_bytes())


def test_real_files_fail_cleanly_when_truncated_or_corrupted(tiny_model):
    rng = np.random.default_rng(3)
    from PIL import Image

    data = sicodec.compress(Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)), model=tiny_model)
    for cut in range(0, len(data), 7):
        with pytest.raises(SicodecError):
            sicodec.decompress(data[:cut], model=tiny_model)
    for i in range(0, len(data), 3):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(SicodecError):
            sicodec.decompress(bytes(bad), model=tiny_model)


def test_spliced_sections_with_valid_crcs_never_crash(tiny_model):
    """Sections moved between files pass their CRCs; decoding then fails cleanly or yields an image."""
    from PIL import Image

    rng = np.random.default_rng(4)
    files = [parse(sicodec.compress(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), model=tiny_model))
             for h, w in ((70, 90), (130, 40), (64, 64))]
    for a in files:
        for b in files:
            for k in range(2):
                spliced = SicFile(a.header, list(a.sections))
                spliced.sections[k] = b.sections[k]
                try:
                    out = sicodec.decompress(spliced.to_bytes(), model=tiny_model)
                except SicodecError:
                    continue
                assert out.size == (a.header.width, a.header.height)
