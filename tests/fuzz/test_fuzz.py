"""Short fuzzing run over mutated .sic files (the long run is scripts/fuzz_sic.py; see docs/robustness.md).

Every case must end in an image of the header's size or a `SicodecError` with a one-line message,
within the time bound and the memory bound that the header's size allows (sic_fuzz.run_case)."""

import time

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import sic_fuzz as F
from sicodec.bitstream import parse
from sicodec.errors import LimitError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sicodec.image import max_pixels, set_max_pixels

    before = max_pixels()
    set_max_pixels(F.FUZZ_MAX_PIXELS)
    yield F.build_corpus(tmp_path_factory.mktemp("fuzz-weights"))
    set_max_pixels(before)


def _assert_ok(case, corpus, **kw):
    result = F.run_case(case, corpus, **kw)
    assert not result.failures, f"{case.describe()}: {result.failures}"
    return result


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_fail_cleanly(corpus, data):
    import random

    seed_file = data.draw(st.sampled_from(corpus.names), label="seed file")
    names = data.draw(st.lists(st.sampled_from(sorted(F.MUTATORS)), min_size=1, max_size=3), label="mutations")
    names.sort(key=lambda n: n not in F.STRUCTURED)
    rnd = random.Random(data.draw(st.integers(0, 2**32), label="mutation seed"))
    case = F.Case(0, seed_file, names, F.mutate(rnd, corpus.files[seed_file], corpus, names))
    if seed_file.startswith("sic"):
        case.level = data.draw(st.sampled_from([None, 0, 1, 2, 4, 5]), label="level")
        case.mode = data.draw(st.sampled_from([None, "uniform", "gaussian", "mean"]), label="mode")
    case.by_name = data.draw(st.booleans(), label="by name")
    note(case.describe())
    _assert_ok(case, corpus)


def test_random_cases_of_the_long_run_with_the_cli(corpus, tmp_path):
    """A few cases exactly as scripts/fuzz_sic.py makes them, each also through `sicodec info` and
    `sicodec decompress` (one error line, exit status 1, no partial output)."""
    for i in range(12):
        case = F.make_case(i, 20250, corpus, cli_every=1)
        _assert_ok(case, corpus, tmpdir=tmp_path)


@pytest.mark.parametrize("name", ["hp-rgb", "sic-l2"])
def test_truncation_at_every_offset(corpus, name):
    data = corpus.files[name]
    decoded = 0
    for cut in range(len(data) + 1):
        result = _assert_ok(F.Case(cut, name, ["truncate"], data[:cut]), corpus, check_memory=False)
        decoded += result.outcome == "decoded"
    # the whole file, and for SIC every level boundary (z alone is refused: level 1 is the least)
    assert decoded == (1 if name.startswith("hp") else 2)


def test_one_bit_flip_in_every_byte(corpus):
    for name in ("hp-grey", "sic-l2"):
        data = corpus.files[name]
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= 1 << (i % 8)
            result = _assert_ok(F.Case(i, name, ["bitflip"], bytes(bad)), corpus, check_memory=False)
            assert result.outcome != "decoded"  # every byte is covered by a CRC


@pytest.mark.parametrize("size", [(2**31, 2**31), (2**32 - 1, 1), (1, F.FUZZ_MAX_PIXELS), (F.FUZZ_MAX_PIXELS, 1),
                                  (513, 513)])
def test_huge_dimensions_are_refused_before_allocating(corpus, size, monkeypatch):
    f = parse(corpus.files["hp-rgb"])
    f.header.width, f.header.height = size
    f.sections = [b"", b""]  # sections that would decode to any size
    data = f.to_bytes()
    model = corpus.models["hp-rgb"]
    monkeypatch.setattr(type(model), "decompress_latents", lambda *a, **k: pytest.fail("reached the decoder"))
    result = _assert_ok(F.Case(0, "hp-rgb", ["dimensions"], data), corpus)
    assert result.outcome == "LimitError" and result.memory < 16 << 20
    with pytest.raises(LimitError):
        import sicodec

        sicodec.decompress(data, model=model)


@pytest.mark.parametrize("name", ["hp-rgb", "sic-full"])
def test_the_memory_bound_holds_for_the_largest_header_allowed(corpus, name):
    """Calibrates MEMORY_PER_PIXEL: a header of the largest size the fuzz limit allows, over empty
    sections (which ANS decodes for any size), runs the whole decoder within the bound and time."""
    f = parse(corpus.files[name])
    f.header.width = f.header.height = int(F.FUZZ_MAX_PIXELS**0.5)
    f.sections = [b""] * len(f.sections)
    result = _assert_ok(F.Case(0, name, ["dimensions"], f.to_bytes()), corpus)
    assert result.outcome == "decoded" and result.pixels == F.FUZZ_MAX_PIXELS


def test_the_harness_catches_foreign_exceptions_bad_messages_and_hangs(corpus, monkeypatch):
    import sicodec
    from sicodec.errors import FormatError

    case = F.Case(0, "hp-rgb", [], corpus.files["hp-rgb"])
    assert _assert_ok(case, corpus).outcome == "decoded"
    monkeypatch.setattr(sicodec, "decompress", lambda *a, **k: {}["boom"])
    assert any("KeyError" in f for f in F.run_case(case, corpus).failures)
    monkeypatch.setattr(sicodec, "decompress", lambda *a, **k: (_ for _ in ()).throw(FormatError("two\nlines")))
    assert any("bad message" in f for f in F.run_case(case, corpus).failures)
    monkeypatch.setattr(sicodec, "decompress", lambda *a, **k: time.sleep(10))
    t = time.perf_counter()
    assert any("timeout" in f for f in F.run_case(case, corpus, time_limit=0.3).failures)
    assert time.perf_counter() - t < 5


def test_the_long_run_script_survives_hangs_and_dead_workers(tmp_path):
    """scripts/fuzz_sic.py on 5 cases, where case 1 hangs and case 3 kills its worker: both are
    counted as failures, the other cases still run, and the summary is written."""
    import json
    import os
    import subprocess
    import sys

    root = F.TESTS.parent
    env = dict(os.environ, SICFUZZ_TEST_HANG="1", SICFUZZ_TEST_DIE="3")
    out = tmp_path / "fuzz.json"
    r = subprocess.run([sys.executable, str(root / "scripts" / "fuzz_sic.py"), "--cases", "5", "--seed", "1",
                        "--workers", "1", "--hard-timeout", "2", "--cli-every", "2", "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=240)
    summary = json.loads(out.read_text())
    assert r.returncode == 1 and summary["cases"] == 5 and summary["failures"] == 2
    reasons = sorted(f["failures"][0].split(":")[0] for f in summary["failure_examples"])
    assert reasons == ["hang", "worker died (exit status 9) during the case"]
    assert sum(summary["outcomes"].values()) == 5 and summary["cli_cases"] == 3  # cases 0, 2, 4
