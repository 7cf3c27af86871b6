"""Mutation fuzzing of .sic files, shared by the short run (tests/fuzz/test_fuzz.py) and the long run
(scripts/fuzz_sic.py).

A case is a valid seed file (made with the tiny test models), one or more mutations and decoding
options, all drawn from one integer (`make_case(index, seed)`), so any case can be replayed alone.
`run_case` feeds the bytes to `bitstream.parse`, `sicodec.decompress` (the tiny model passed
explicitly, or looked up by the header's name), `codec.truncate` and optionally the CLI (`info`,
`decompress`), and classifies the outcome:

- `decoded`: an image of the header's size and colour came back, or a `SicodecError` subclass
  (its class name is the outcome) with a non-empty one-line message;
- anything else is a failure: another exception type, an image of the wrong size or mode, a bad
  message, a case slower than the time bound, a peak memory above the bound derived from the header
  size, or a CLI exit status other than 0/1, a traceback, a partial or temporary output.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# The short and the long run refuse headers above this many pixels (a configurable limit, like
# Pillow's MAX_IMAGE_PIXELS): every image within it decodes quickly with the tiny models, so the time
# and memory bounds below hold for any header the parser accepts.
FUZZ_MAX_PIXELS = 1 << 18
TIME_LIMIT = 5.0  # seconds of CPU time per case (parse + decode + truncate + CLI); 6x that of wall-clock time
# Peak memory a case may add: a fixed allowance plus bytes per pixel of the image the header declares
# (its width x height, not the padded size: a header must not buy more than it states). The tiny
# models need well under 1 KB per pixel at their peak (measured in tests/fuzz/test_fuzz.py).
MEMORY_BASE = 96 << 20
MEMORY_PER_PIXEL = 2048

SIGNATURE = b"\x89SIC\r\n\x1a\n"
INTERESTING_U32 = (0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 127, 128, 255, 256, 512, 513, 1023, 1024, 4096, 65535, 65536,
                   1 << 20, (1 << 24) + 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 2, (1 << 32) - 1)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


class CaseTimeout(BaseException):
    """Raised by the interval timer when a case runs past its time bound (a BaseException, so that
    no `except Exception` inside sicodec can swallow it)."""


# --- seed files ------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Valid seed files (bytes), the tiny model of each, and that model's weights file for the CLI."""

    files: dict[str, bytes]
    models: dict[str, object]  # seed name -> model object
    weights: dict[str, Path] = field(default_factory=dict)  # seed name -> .safetensors of that model

    @property
    def names(self) -> list[str]:
        return sorted(self.files)


def _smooth_image(rng: np.random.Generator, h: int, w: int, grey: bool = False):
    from PIL import Image

    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 7.0)[..., None] * np.cos(y / 5.0)[..., None] + rng.normal(0, 20, (h, w, 3))
    pixels = np.clip(base, 0, 255).astype(np.uint8)
    if grey:
        return Image.fromarray(pixels[:, :, 0], "L")
    return Image.fromarray(pixels, "RGB")


def build_corpus(weights_dir: str | os.PathLike | None = None) -> Corpus:
    """Seed files: tiny hyperprior 64x64 RGB and 70x40 grey with an ICC profile; tiny SIC 64x64 with
    all 4 levels and cut to level 2. With `weights_dir`, the models are also saved there for the CLI."""
    import sicodec
    from conftest import make_tiny_model, make_tiny_sic
    from sicodec.codec import truncate

    rng = np.random.default_rng(20250)
    hp, sic = make_tiny_model(), make_tiny_sic()
    grey = _smooth_image(rng, 40, 70, grey=True)
    grey.info["icc_profile"] = b"fake icc profile " * 4
    files = {
        "hp-rgb": sicodec.compress(_smooth_image(rng, 64, 64), model=hp),
        "hp-grey": sicodec.compress(grey, model=hp),
        "sic-full": sicodec.compress(_smooth_image(rng, 64, 64), model=sic, seed=7),
    }
    files["sic-l2"] = truncate(files["sic-full"], 2)
    models = {name: (sic if name.startswith("sic") else hp) for name in files}
    for m in (hp, sic):  # derive (and cache) what decoding needs, so that no case pays for it
        m.fingerprint(), m.tables_checksum()
    _warm_registry()
    weights = {}
    if weights_dir is not None:
        from sicodec.models.weights import save_weights

        paths = {}
        for key, m in (("hp", hp), ("sic", sic)):
            paths[key] = Path(weights_dir) / f"{m.name}.safetensors"
            save_weights(m, paths[key], half=False)
        weights = {name: paths["sic" if name.startswith("sic") else "hp"] for name in files}
    return Corpus(files, models, weights)


def _warm_registry() -> None:
    """Load the installed registered models once: cases that decode by the header's name find them cached."""
    from sicodec.codec import list_models, load_model
    from sicodec.errors import SicodecError

    for info in list_models():
        if info["installed"]:
            try:
                m = load_model(info["name"])
                m.fingerprint(), m.tables_checksum()
            except SicodecError:
                pass


# --- the layout of a valid file, for structured mutations ----------------------------------------
@dataclass
class Layout:
    """Field offsets of a file that parses (absolute offsets into the file)."""

    body_start: int
    body_len: int
    fields: dict[str, tuple[int, str]]  # name -> (offset, struct format)
    sections: list[tuple[int, int]]  # (offset of the length field, payload length)

    @classmethod
    def of(cls, data: bytes) -> "Layout":
        body_len = struct.unpack_from("<I", data, 9)[0]
        pos = 13
        name_len = data[pos]
        fields = {"version": (8, "<B"), "header_len": (9, "<I"), "name_len": (pos, "<B")}
        pos += 1 + name_len
        fields["fingerprint"] = (pos, "16s")
        pos += 16
        for name, fmt in (("tables_crc", "<I"), ("width", "<I"), ("height", "<I"), ("colour", "<B"),
                          ("flags", "<B"), ("seed", "<Q"), ("sections_total", "<H"), ("icc_len", "<I")):
            fields[name] = (pos, fmt)
            pos += struct.calcsize(fmt)
        fields["header_crc"] = (13 + body_len, "<I")
        sections, pos = [], 13 + body_len + 4
        while pos < len(data):
            n = struct.unpack_from("<I", data, pos)[0]
            sections.append((pos, n))
            pos += 8 + n
        return cls(13, body_len, fields, sections)

    def section_payloads(self, data: bytes) -> list[bytes]:
        return [data[o + 4 : o + 4 + n] for o, n in self.sections]

    def head(self, data: bytes) -> bytes:
        """Signature, header and header CRC: everything before the first section."""
        return data[: self.body_start + self.body_len + 4]


def fix_header_crc(data: bytes) -> bytes:
    """Recompute the header CRC of a file whose header length field is still usable."""
    data = bytearray(data)
    if len(data) < 13:
        return bytes(data)
    n = struct.unpack_from("<I", data, 9)[0]
    if 13 + n + 4 > len(data):
        return bytes(data)
    struct.pack_into("<I", data, 13 + n, zlib.crc32(bytes(data[8 : 13 + n])))
    return bytes(data)


def section_record(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def _set_field(data: bytes, layout: Layout, name: str, value) -> bytes:
    offset, fmt = layout.fields[name]
    out = bytearray(data)
    if fmt == "16s":
        out[offset : offset + 16] = value
    else:
        bits = 8 * struct.calcsize(fmt)
        struct.pack_into(fmt, out, offset, int(value) % (1 << bits))
    return bytes(out)


# --- mutators: (rnd, data, corpus) -> bytes ----------------------------------------------------------
def m_bitflip(rnd, data, corpus):
    out = bytearray(data)
    for _ in range(rnd.choice((1, 1, 1, 2, 3, 8))):
        if out:
            out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
    return bytes(out)


def m_bytes(rnd, data, corpus):
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        if out:
            out[rnd.randrange(len(out))] = rnd.choice(INTERESTING_BYTES) if rnd.random() < 0.5 else rnd.randrange(256)
    return bytes(out)


def m_truncate(rnd, data, corpus):
    return data[: rnd.randrange(len(data) + 1)]


def m_extend(rnd, data, corpus):
    choice = rnd.randrange(3)
    if choice == 0:
        return data + rnd.randbytes(rnd.randint(1, 64))
    layout = Layout.of(data)
    payloads = layout.section_payloads(data)
    if choice == 1 and payloads:  # one more valid section record (beyond sections_total or not)
        return data + section_record(rnd.choice(payloads))
    return data + section_record(rnd.randbytes(4 * rnd.randint(0, 16)))


HEADER_FIELDS = ("version", "header_len", "name_len", "tables_crc", "width", "height", "colour", "flags", "seed",
                 "sections_total", "icc_len")


def _interesting(rnd, name: str, current: int) -> int:
    if name in ("width", "height"):
        side = int(FUZZ_MAX_PIXELS**0.5)
        return rnd.choice((0, 1, 2, 63, 64, 65, side, side + 1, FUZZ_MAX_PIXELS, FUZZ_MAX_PIXELS // 64,
                           FUZZ_MAX_PIXELS + 1, 1 << 16, (1 << 31) - 1, (1 << 32) - 1, current * 2, current + 1,
                           current - 1))
    if name in ("colour", "flags", "name_len", "version"):
        return rnd.choice((0, 1, 2, 3, 63, 64, 65, 127, 128, 255, current + 1, current - 1))
    if name == "sections_total":
        return rnd.choice((0, 1, 2, 3, 4, 5, 6, 9, 17, 255, 256, 65535, current + 1, current - 1))
    return rnd.choice(INTERESTING_U32 + (current + 1, current - 1, current + 4, current - 4))


def m_field_raw(rnd, data, corpus):
    """A header or section length field set to an interesting value; CRCs left as they are."""
    layout = Layout.of(data)
    if layout.sections and rnd.random() < 0.4:
        offset, n = rnd.choice(layout.sections)
        out = bytearray(data)
        struct.pack_into("<I", out, offset, rnd.choice(INTERESTING_U32 + (n + 1, n - 1 if n else 0, n + 4)) % (1 << 32))
        return bytes(out)
    name = rnd.choice(HEADER_FIELDS)
    current = struct.unpack_from(layout.fields[name][1], data, layout.fields[name][0])[0]
    return _set_field(data, layout, name, _interesting(rnd, name, current))


def m_field_fixed(rnd, data, corpus):
    """A header field set to an interesting value with the header CRC recomputed, so that the checks
    after the CRC (lengths, limits, names, model identity) are reached."""
    layout = Layout.of(data)
    name = rnd.choice(HEADER_FIELDS + ("width", "height", "width", "height", "sections_total"))
    current = struct.unpack_from(layout.fields[name][1], data, layout.fields[name][0])[0]
    return fix_header_crc(_set_field(data, layout, name, _interesting(rnd, name, current)))


def m_dimensions(rnd, data, corpus):
    """Width and height both changed (huge, thin, off by one), header CRC recomputed."""
    layout = Layout.of(data)
    w, h = (struct.unpack_from("<I", data, layout.fields[k][0])[0] for k in ("width", "height"))
    w2, h2 = _interesting(rnd, "width", w), _interesting(rnd, "height", h)
    if rnd.random() < 0.3:  # thin images: few pixels, but 64x that after padding
        w2, h2 = rnd.choice(((1, FUZZ_MAX_PIXELS), (FUZZ_MAX_PIXELS, 1), (2, FUZZ_MAX_PIXELS // 2), (1, 64 * 64)))
    out = fix_header_crc(_set_field(_set_field(data, layout, "width", w2), layout, "height", h2))
    if rnd.random() < 0.3:  # over empty sections, which ANS decodes for any size: the decoder runs in full
        out = layout.head(out) + section_record(b"") * len(layout.sections)
    return out


def m_identity(rnd, data, corpus):
    """The fingerprint or the tables CRC changed (header CRC recomputed): must give ModelMismatchError."""
    layout = Layout.of(data)
    if rnd.random() < 0.5:
        offset, _ = layout.fields["fingerprint"]
        fp = bytearray(data[offset : offset + 16])
        choice = rnd.randrange(3)
        if choice == 0:
            fp[rnd.randrange(16)] ^= 1 << rnd.randrange(8)
        elif choice == 1:
            fp = bytearray(16)
        else:
            other = corpus.files[rnd.choice(corpus.names)]
            ol = Layout.of(other)
            fp = bytearray(other[ol.fields["fingerprint"][0] : ol.fields["fingerprint"][0] + 16])
        out = _set_field(data, layout, "fingerprint", bytes(fp))
    else:
        current = struct.unpack_from("<I", data, layout.fields["tables_crc"][0])[0]
        out = _set_field(data, layout, "tables_crc", current ^ (1 << rnd.randrange(32)))
    return fix_header_crc(out)


MODEL_NAMES = ("hyperprior-q4", "hyperprior-q1", "hyperprior", "sic", "sic-paper", "sic-test", "hyperprior-test",
               "unknown-model", "evil.safetensors", "tiny.safetensors", "conftest.py", "a" * 64, "0", "a..b")


def m_model_name(rnd, data, corpus):
    """Another model name in the header (registered, unknown, file-like), header rebuilt with valid CRC."""
    layout = Layout.of(data)
    name = rnd.choice(MODEL_NAMES).encode() if rnd.random() < 0.8 else rnd.randbytes(rnd.randint(0, 70))
    off = layout.fields["name_len"][0]
    old_len = data[off]
    body = bytearray(data[off : layout.body_start + layout.body_len])
    body[0 : 1 + old_len] = bytes([len(name) % 256]) + name
    head = struct.pack("<BI", data[8], len(body)) + bytes(body)
    return SIGNATURE + head + struct.pack("<I", zlib.crc32(head)) + data[layout.body_start + layout.body_len + 4 :]


def _mutate_payload(rnd, payload: bytes) -> bytes:
    words = len(payload) // 4
    choice = rnd.randrange(9)
    if choice == 0:  # bit flips
        out = bytearray(payload)
        for _ in range(rnd.randint(1, 3)):
            if out:
                out[rnd.randrange(len(out))] ^= 1 << rnd.randrange(8)
        return bytes(out)
    if choice == 1:  # random words of random length
        return rnd.randbytes(4 * rnd.randint(0, max(2 * words, 4)))
    if choice == 2:
        return b""
    if choice == 3:  # cut (word-aligned or not)
        return payload[: rnd.randrange(len(payload) + 1)]
    if choice == 4:  # zero or all-ones words
        return rnd.choice((b"\0", b"\xff")) * (4 * rnd.randint(1, max(words, 1)))
    if choice == 5:  # a word repeated, or words appended
        return payload + rnd.randbytes(4 * rnd.randint(1, 8))
    if choice == 6:  # last word zero (invalid ANS head) or high
        tail = rnd.choice((b"\0\0\0\0", b"\xff\xff\xff\xff", b"\0\0\0\x80"))
        return payload[:-4] + tail if words else tail
    if choice == 7:  # words swapped
        out = [payload[i : i + 4] for i in range(0, 4 * words, 4)]
        rnd.shuffle(out)
        return b"".join(out)
    return payload[:4 * words // 2] + payload[4 * words // 2 + 4:] if words > 1 else payload + b"\x01"


def m_payload(rnd, data, corpus):
    """A section payload corrupted with its CRC recomputed: reaches the entropy decoder."""
    layout = Layout.of(data)
    payloads = layout.section_payloads(data)
    if not payloads:
        return data + section_record(rnd.randbytes(4 * rnd.randint(0, 8)))
    k = rnd.randrange(len(payloads))
    payloads[k] = _mutate_payload(rnd, payloads[k])
    return layout.head(data) + b"".join(map(section_record, payloads))


def m_sections(rnd, data, corpus):
    """Sections dropped, duplicated, swapped or reordered, each with a valid CRC."""
    layout = Layout.of(data)
    p = layout.section_payloads(data)
    choice = rnd.randrange(4)
    if choice == 0 and p:
        del p[rnd.randrange(len(p))]
    elif choice == 1 and p:
        k = rnd.randrange(len(p))
        p.insert(k, p[k])
    elif choice == 2 and len(p) > 1:
        i, j = rnd.sample(range(len(p)), 2)
        p[i], p[j] = p[j], p[i]
    else:
        rnd.shuffle(p)
    out = layout.head(data) + b"".join(map(section_record, p))
    if rnd.random() < 0.5:  # make sections_total agree with the new count
        out = fix_header_crc(_set_field(out, layout, "sections_total", len(p)))
    return out


def m_splice(rnd, data, corpus):
    """Parts of two valid files joined: A's header with B's sections, or sections mixed."""
    other = corpus.files[rnd.choice(corpus.names)]
    la, lb = Layout.of(data), Layout.of(other)
    pa, pb = la.section_payloads(data), lb.section_payloads(other)
    choice = rnd.randrange(4)
    if choice == 0:
        return la.head(data) + other[lb.body_start + lb.body_len + 4 :]
    if choice == 1:  # mixed sections
        mixed = [rnd.choice((pa, pb))[i] if i < min(len(pa), len(pb)) else (pa + pb)[i] for i in range(max(len(pa), len(pb)))]
        return la.head(data) + b"".join(map(section_record, mixed))
    if choice == 2:  # raw cut and join at random offsets
        return data[: rnd.randrange(len(data) + 1)] + other[rnd.randrange(len(other) + 1) :]
    # B's header body fields (size, colour) with A's identity
    out = data
    for name in ("width", "height", "colour", "sections_total"):
        off, fmt = lb.fields[name]
        out = _set_field(out, la, name, struct.unpack_from(fmt, other, off)[0])
    return fix_header_crc(out)


def m_random(rnd, data, corpus):
    """Random bytes, after the signature or a signature with a plausible header start, or none."""
    choice = rnd.randrange(4)
    junk = rnd.randbytes(rnd.randint(0, 200))
    if choice == 0:
        return junk
    if choice == 1:
        return SIGNATURE + junk
    if choice == 2:
        return SIGNATURE + b"\x01" + struct.pack("<I", len(junk)) + junk + struct.pack("<I", zlib.crc32(b"\x01" + struct.pack("<I", len(junk)) + junk))
    return data[: rnd.randrange(len(data) + 1)] + junk


def m_icc(rnd, data, corpus):
    """The ICC profile replaced (empty, random, large) with header lengths and CRC rebuilt."""
    layout = Layout.of(data)
    off = layout.fields["icc_len"][0]
    icc = rnd.choice((b"", rnd.randbytes(rnd.randint(1, 300)), b"\0" * 5000, b"acsp" * 50))
    body = data[layout.body_start : off] + struct.pack("<I", len(icc)) + icc
    head = struct.pack("<BI", data[8], len(body)) + body
    return SIGNATURE + head + struct.pack("<I", zlib.crc32(head)) + data[layout.body_start + layout.body_len + 4 :]


MUTATORS = {
    "bitflip": m_bitflip, "bytes": m_bytes, "truncate": m_truncate, "extend": m_extend,
    "field-raw": m_field_raw, "field-fixed": m_field_fixed, "dimensions": m_dimensions, "identity": m_identity,
    "model-name": m_model_name, "payload": m_payload, "sections": m_sections, "splice": m_splice,
    "random": m_random, "icc": m_icc,
}
# Structured mutators need a file that still parses structurally; stacked mutations apply them first.
STRUCTURED = ("extend", "field-raw", "field-fixed", "dimensions", "identity", "model-name", "payload", "sections",
              "splice", "icc")
WEIGHTS = {"payload": 4, "field-fixed": 2, "dimensions": 2, "sections": 2, "splice": 2}


# --- cases -------------------------------------------------------------------------------------------
@dataclass
class Case:
    index: int
    seed_file: str
    mutations: list[str]
    data: bytes
    level: int | None = None
    mode: str | None = None
    sample_seed: int | None = None
    by_name: bool = False  # decode with the model named in the header (registry) instead of the tiny one
    cli: bool = False

    def describe(self) -> str:
        opts = {k: v for k, v in (("level", self.level), ("mode", self.mode), ("seed", self.sample_seed)) if v is not None}
        return f"case {self.index}: {self.seed_file} + {'+'.join(self.mutations) or 'none'} {opts or ''}".rstrip()


def mutate(rnd: random.Random, data: bytes, corpus: Corpus, names: list[str]) -> bytes:
    for i, name in enumerate(names):
        try:
            data = MUTATORS[name](rnd, data, corpus)
        except (struct.error, IndexError, ValueError):  # structure already destroyed: fall back to raw
            data = m_bitflip(rnd, data, corpus)
            names[i] = "bitflip"
    return data


def make_case(index: int, seed: int, corpus: Corpus, cli_every: int = 0) -> Case:
    rnd = random.Random(f"{seed}:{index}")
    seed_file = rnd.choice(corpus.names)
    pool = [n for n in MUTATORS for _ in range(WEIGHTS.get(n, 1))]
    count = rnd.choice((1, 1, 1, 2, 2, 3))
    names = [rnd.choice(pool) for _ in range(count)]
    names.sort(key=lambda n: n not in STRUCTURED)  # structured first, raw damage after
    data = mutate(rnd, corpus.files[seed_file], corpus, names)
    case = Case(index, seed_file, names, data)
    if seed_file.startswith("sic") and rnd.random() < 0.7:
        case.level = rnd.choice((None, None, 0, 1, 2, 3, 4, 5, -1))
        case.mode = rnd.choice((None, "uniform", "gaussian", "mean"))
        case.sample_seed = rnd.choice((None, 0, 1, 2**64 - 1, 2**64, -1))
    elif rnd.random() < 0.05:  # options a hyperprior file refuses
        case.level = 1
    case.by_name = rnd.random() < 0.1
    case.cli = bool(cli_every) and index % cli_every == 0
    return case


# --- the oracle --------------------------------------------------------------------------------------
@contextlib.contextmanager
def time_bound(cpu_seconds: float, wall_seconds: float | None = None):
    """Raise CaseTimeout in the main thread after `cpu_seconds` of this process's CPU time (the
    decoder's own work, whatever else the machine runs) or `wall_seconds` of real time (a case that
    blocks); default wall bound: 6 x the CPU bound. A no-op outside the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    wall_seconds = 6 * cpu_seconds if wall_seconds is None else wall_seconds

    def fire(signum, frame):
        kind = "CPU" if signum == signal.SIGPROF else "wall-clock"
        raise CaseTimeout(f"ran past {cpu_seconds if signum == signal.SIGPROF else wall_seconds} s of {kind} time")

    old = signal.signal(signal.SIGPROF, fire), signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    signal.setitimer(signal.ITIMER_REAL, wall_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old[0])
        signal.signal(signal.SIGALRM, old[1])


def _status_kb(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (VmHWM) of this process (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_bytes() -> int:
    return 1024 * _status_kb("VmRSS")


def peak_rss_bytes() -> int:
    return 1024 * _status_kb("VmHWM")


@dataclass
class Result:
    outcome: str  # 'decoded' or the SicodecError subclass name of decompress; 'failure' if any check failed
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0  # CPU time of the case
    wall: float = 0.0  # real time of the case (includes waiting for a busy machine)
    memory: int = 0  # peak RSS growth during the case, bytes
    memory_limit: int = 0
    pixels: int = 0  # width x height the header declares (0 if it did not parse)


def _check_error(e: BaseException, where: str, failures: list[str]) -> str:
    from sicodec.errors import SicodecError

    if not isinstance(e, SicodecError):
        tb = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        at = f" at {Path(tb.filename).name}:{tb.lineno}" if tb else ""
        failures.append(f"{where}: {type(e).__name__}: {str(e)[:200]}{at}")
        return "crash"
    msg = str(e)
    if not msg.strip() or "\n" in msg or len(msg) > 400:
        failures.append(f"{where}: {type(e).__name__} with a bad message: {msg[:200]!r}")
    return type(e).__name__


def _check_image(image, header, where: str, failures: list[str]) -> None:
    from PIL import Image

    if not isinstance(image, Image.Image):
        failures.append(f"{where}: returned {type(image).__name__}, not an image")
        return
    want = "L" if header.grey else "RGB"
    if image.size != (header.width, header.height) or image.mode != want:
        failures.append(f"{where}: image {image.size} {image.mode}, header says {header.width}x{header.height} {want}")


def run_case(case: Case, corpus: Corpus, time_limit: float = TIME_LIMIT, tmpdir: str | os.PathLike | None = None,
             check_memory: bool = True) -> Result:
    """Feed one case to the parser, the decoder, truncate and (case.cli) the CLI; classify the outcome."""
    import sicodec
    from sicodec.bitstream import parse
    from sicodec.codec import truncate

    failures: list[str] = []
    header = None
    outcome = "crash"
    model = None if case.by_name else corpus.models[case.seed_file]
    memory_ok = check_memory and reset_peak_rss()
    before = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with time_bound(time_limit):
            try:
                f = parse(case.data)
                header = f.header
            except Exception as e:  # noqa: BLE001 - the oracle classifies every exception
                _check_error(e, "parse", failures)
            options = {k: v for k, v in (("level", case.level), ("mode", case.mode), ("seed", case.sample_seed))
                       if v is not None}
            try:
                image = sicodec.decompress(case.data, model=model, **options)
                outcome = "decoded"
                if header is None:
                    failures.append("decompress: decoded a file that parse refused")
                else:
                    _check_image(image, header, "decompress", failures)
            except Exception as e:  # noqa: BLE001
                outcome = _check_error(e, "decompress", failures)
            for level in (1, 2, 5):
                try:
                    cut = truncate(case.data, level)
                    g = parse(cut)
                    if not case.data.startswith(cut) or len(g.sections) != level + 1:
                        failures.append(f"truncate: level {level} is not a prefix with {level + 1} sections")
                except Exception as e:  # noqa: BLE001
                    _check_error(e, "truncate", failures)
            if case.cli:
                run_cli(case, corpus, header, failures, tmpdir)
    except CaseTimeout as e:
        failures.append(f"timeout: {e}")
    seconds, wall = time.process_time() - c0, time.perf_counter() - t0
    if seconds > time_limit:
        failures.append(f"slow: {seconds:.2f} s of CPU time")
    result = Result("failure" if failures else outcome, failures, seconds, wall)
    if header is not None:
        result.pixels = header.width * header.height
    if memory_ok:
        result.memory = max(0, peak_rss_bytes() - before)
        result.memory_limit = MEMORY_BASE + MEMORY_PER_PIXEL * result.pixels
        if result.memory > result.memory_limit:
            result.failures.append(f"memory: peak grew by {result.memory >> 20} MiB, bound {result.memory_limit >> 20} MiB")
            result.outcome = "failure"
    return result


def _cli(args: list[str]) -> tuple[int, str, str]:
    import io

    from sicodec.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _check_cli(cmd: str, code: int, err: str, failures: list[str]) -> None:
    lines = err.splitlines()
    if code not in (0, 1):
        failures.append(f"cli {cmd}: exit status {code}: {err.strip()[:200]}")
    if "Traceback" in err or "internal error" in err:
        failures.append(f"cli {cmd}: {err.strip()[:200]}")
    if code == 1 and sum(line.startswith("sicodec: error:") for line in lines) != 1:
        failures.append(f"cli {cmd}: not exactly one error line: {err.strip()[:200]!r}")


def run_cli(case: Case, corpus: Corpus, header, failures: list[str], tmpdir=None) -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        src, dst = Path(d) / "in.sic", Path(d) / "out.png"
        src.write_bytes(case.data)
        code, _, err = _cli(["info", str(src)])
        _check_cli("info", code, err, failures)
        args = ["decompress", str(src), str(dst)]
        if not case.by_name:
            args += ["--model", str(corpus.weights[case.seed_file])]
        code, _, err = _cli(args)
        _check_cli("decompress", code, err, failures)
        names = sorted(os.listdir(d))
        if code == 0:
            if header is None:
                failures.append("cli decompress: succeeded on a file that parse refused")
            else:
                try:
                    with Image.open(dst) as im:
                        im.load()
                        _check_image(im, header, "cli decompress", failures)
                except Exception as e:  # noqa: BLE001
                    failures.append(f"cli decompress: output unreadable: {e}")
        elif "out.png" in names:
            failures.append("cli decompress: failed but left an output")
        if [n for n in names if n not in ("in.sic", "out.png")]:
            failures.append(f"cli decompress: left other files: {names}")
        if src.read_bytes() != case.data:
            failures.append("cli: the input file was modified")
