"""No data loss: atomic outputs (a killed process never leaves a partial file under the final name),
inputs never modified or overwritten, existing outputs kept without --force, and folder (batch)
commands that go on past bad files and report them (see docs/robustness.md)."""

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sicodec.bitstream import parse
from sicodec.cli import main
from sicodec.errors import SicodecError
from sicodec.fileio import write_atomic


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _digest(folder: Path) -> dict:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.iterdir()) if p.is_file()}


def _image(path, size=(48, 40), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 4 if mode == "RGBA" else 3), dtype=np.uint8)
    if mode == "RGBA":
        pixels[..., 3] = 10
    Image.fromarray(pixels, mode).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    _image(d / "a.png", seed=1)
    _image(d / "b.jpg", seed=2)
    _image(d / "c.ppm", (70, 33), seed=3)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # unreadable
    _image(d / "glass.png", mode="RGBA")  # translucent: refused
    (d / "notes.txt").write_text("not an image")  # not an image suffix: ignored
    _image(d / ".hidden.png", seed=4)  # hidden: ignored
    return d


def test_batch_compress_goes_on_past_bad_files_and_reports_them(capsys, photos, tmp_path, tiny_weights):
    before = _digest(photos)
    out = tmp_path / "out" / "sic"  # created, with its parent
    code, stdout, err = _run(capsys, "compress", photos, out, "--model", tiny_weights)
    assert code == 1
    assert sorted(os.listdir(out)) == ["a.sic", "b.sic", "c.sic"]
    for name in ("a", "b", "c"):
        assert parse((out / f"{name}.sic").read_bytes()).header.model == "hyperprior-test"
    errors = [line for line in err.splitlines() if line.startswith("sicodec: error:")]
    assert len(errors) == 3 and "broken.png" in errors[0] and "glass.png: " in errors[1] and "transparency" in errors[1]
    assert errors[-1] == f"sicodec: error: 3 of 5 files compressed into {out}; 2 failed: broken.png, glass.png"
    assert stdout.count(" bytes, ") == 3 and "Traceback" not in err
    assert _digest(photos) == before  # inputs untouched


def test_batch_keeps_existing_outputs_unless_forced(capsys, photos, tmp_path, tiny_weights):
    for bad in ("broken.png", "glass.png"):
        (photos / bad).unlink()
    out = tmp_path / "sic"
    code, stdout, _ = _run(capsys, "compress", photos, out, "--model", tiny_weights)
    assert code == 0 and stdout.splitlines()[-1] == f"3 of 3 files compressed into {out}"
    (out / "b.sic").write_bytes(b"precious")
    first = _digest(out)
    code, _, err = _run(capsys, "compress", photos, out, "--model", tiny_weights)
    assert code == 1 and err.count("already exists (use --force to overwrite)") == 3 and _digest(out) == first
    code, _, _ = _run(capsys, "compress", photos, out, "--model", tiny_weights, "--force")
    assert code == 0 and (out / "b.sic").read_bytes()[:4] == b"\x89SIC"


def test_batch_decompress_reports_corrupt_files(capsys, photos, tmp_path, tiny_weights):
    for bad in ("broken.png", "glass.png"):
        (photos / bad).unlink()
    sics, pngs = tmp_path / "sic", tmp_path / "png"
    assert _run(capsys, "compress", photos, sics, "--model", tiny_weights)[0] == 0
    data = bytearray((sics / "b.sic").read_bytes())
    data[-10] ^= 0x20
    (sics / "b.sic").write_bytes(bytes(data))
    (sics / "empty.sic").write_bytes(b"")
    before = _digest(sics)
    code, stdout, err = _run(capsys, "decompress", sics, pngs, "--model", tiny_weights)
    assert code == 1 and sorted(os.listdir(pngs)) == ["a.png", "c.png"]
    assert Image.open(pngs / "c.png").size == (70, 33)
    assert f"sicodec: error: {sics / 'b.sic'}: section 2 is corrupted (CRC mismatch)" in err
    assert f"{sics / 'empty.sic'}: file is empty (0 bytes)" in err
    assert err.splitlines()[-1].endswith("2 of 4 files decompressed into " f"{pngs}; 2 failed: b.sic, empty.sic")
    assert _digest(sics) == before


def test_batch_outputs_with_the_same_name_and_bad_output_folders(capsys, tmp_path, tiny_weights):
    d = tmp_path / "in"
    d.mkdir()
    _image(d / "x.png", seed=1)
    _image(d / "x.jpg", seed=2)
    code, _, err = _run(capsys, "compress", d, tmp_path / "out", "--model", tiny_weights)
    assert code == 1 and "x.png: its output x.sic is also that of x.jpg; skipped" in err
    assert parse((tmp_path / "out" / "x.sic").read_bytes())
    (tmp_path / "file").write_text("")
    code, _, err = _run(capsys, "compress", d, tmp_path / "file", "--model", tiny_weights)
    assert code == 1 and "not a folder" in err and (tmp_path / "file").read_text() == ""
    (tmp_path / "none").mkdir()
    code, _, err = _run(capsys, "decompress", tmp_path / "none", tmp_path / "png")
    assert code == 1 and "no .sic files" in err


def test_an_input_is_never_its_own_output(capsys, tmp_path, tiny_weights):
    image = _image(tmp_path / "in.png")
    sic = tmp_path / "a.sic"
    assert _run(capsys, "compress", image, sic, "--model", tiny_weights)[0] == 0
    before = _digest(tmp_path)
    for args in (["compress", image, image], ["truncate", sic, sic, "--level", "1"],
                 ["decompress", sic, sic], ["compress", image, tmp_path / "." / "in.png"]):
        code, _, err = _run(capsys, *args, "--model", tiny_weights, "--force") if args[0] != "truncate" else \
            _run(capsys, *args, "--force")
        assert code == 1 and "is the input file; sicodec never overwrites its input" in err, err
    assert _digest(tmp_path) == before


def test_an_output_created_meanwhile_by_another_process_is_kept(tmp_path):
    target = tmp_path / "out.sic"

    def writer(f):
        f.write(b"ours")
        target.write_bytes(b"theirs")  # another process wins the race after our existence check

    with pytest.raises(SicodecError, match="already exists"):
        write_atomic(target, writer, overwrite=False)
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.sic"]
    write_atomic(target, lambda f: f.write(b"ours"))  # --force
    assert target.read_bytes() == b"ours" and os.listdir(tmp_path) == ["out.sic"]


def test_a_failing_writer_leaves_nothing(tmp_path):
    def writer(f):
        f.write(b"partial")
        raise ValueError("encoder bug")

    with pytest.raises(ValueError):
        write_atomic(tmp_path / "x.png", writer)
    with pytest.raises(SicodecError, match="cannot write"):
        write_atomic(tmp_path / "missing" / "x.png", lambda f: f.write(b""))
    assert os.listdir(tmp_path) == []


# --- killed and terminated processes ----------------------------------------------------------------
# The command runs in a child process; SICODEC_TEST_SLOW_FSYNC makes fsync wait, which holds the
# complete temporary file unrenamed long enough to kill the process in that window every time.
CHILD = """
import os, sys, time
if os.environ.get("SICODEC_TEST_SLOW_FSYNC"):
    real = os.fsync
    os.fsync = lambda fd: (time.sleep(float(os.environ["SICODEC_TEST_SLOW_FSYNC"])), real(fd))[1]
from sicodec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start(args, slow_fsync=None):
    env = dict(os.environ)
    if slow_fsync:
        env["SICODEC_TEST_SLOW_FSYNC"] = str(slow_fsync)
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _temp_files(folder: Path, name: str) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(f".{name}.") and n.endswith(".tmp")]


def _kill_when(proc, folder: Path, name: str, moment: str, delay: float, sig=signal.SIGKILL) -> str:
    """Send `sig` at `moment`: 'time' (after `delay` s), 'temp' (as soon as the temporary output
    appears) or 'temp+delay'. Returns what the folder held at that moment."""
    t0 = time.monotonic()
    seen = False
    while proc.poll() is None and time.monotonic() - t0 < 120:
        if moment != "time" and not seen and _temp_files(folder, name):
            seen, t0 = True, time.monotonic()
        if (moment == "time" or seen) and time.monotonic() - t0 >= (0 if moment == "temp" else delay):
            proc.send_signal(sig)
            break
        time.sleep(0.001)
    proc.wait()
    return "temp seen" if seen else "no temp seen"


@pytest.fixture(scope="module")
def big(tmp_path_factory, tiny_weights):
    """A 640 x 480 image, its .sic file and the PNG it decodes to, and how long a child process takes
    for each command (start-up included, estimated from a timed start-up and an in-process run)."""
    d = tmp_path_factory.mktemp("big")
    y, x = np.mgrid[0:480, 0:640]
    rng = np.random.default_rng(5)
    pixels = np.clip(128 + 80 * np.sin(x / 30)[..., None] * np.cos(y / 20)[..., None] + rng.normal(0, 25, (480, 640, 3)),
                     0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(d / "big.png")
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "import sicodec.cli, sicodec.codec"], check=True)
    startup = time.monotonic() - t
    times = {}
    for cmd, src, dst in (("compress", "big.png", "big.sic"), ("decompress", "big.sic", "ref.png")):
        t = time.monotonic()
        assert main([cmd, str(d / src), str(d / dst), "--model", str(tiny_weights)]) == 0
        times[cmd] = startup + time.monotonic() - t
    return d, times


@pytest.mark.parametrize("cmd", ["compress", "decompress"])
def test_a_killed_process_leaves_the_old_state_or_the_complete_output(big, tmp_path, tiny_weights, cmd):
    src_dir, times = big
    src = tmp_path / ("in.png" if cmd == "compress" else "in.sic")
    src.write_bytes((src_dir / ("big.png" if cmd == "compress" else "big.sic")).read_bytes())
    reference = (src_dir / ("big.sic" if cmd == "compress" else "ref.png")).read_bytes()
    name = "out.sic" if cmd == "compress" else "out.png"
    out = tmp_path / name
    input_before = (src.read_bytes(), src.stat().st_mtime_ns)
    rng = random.Random(int(os.environ.get("SICODEC_KILL_SEED", time.time_ns())))
    moments = [("time", rng.uniform(0.3, 1.2 * times[cmd]), None), ("temp", 0, None), ("temp+delay", 0.3, 2.0)]
    seen = []
    for moment, delay, slow in moments:
        proc = _start([cmd, src, out, "--model", tiny_weights], slow_fsync=slow)
        what = _kill_when(proc, tmp_path, name, moment, delay)
        label = f"{cmd} killed at {moment} {delay:.2f} s ({what}, exit {proc.returncode})"
        if out.exists():  # complete and valid, never partial
            data = out.read_bytes()
            if cmd == "compress":
                assert parse(data).header.width == 640, label
            else:
                assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(src_dir / "ref.png"))), label
            assert data == reference, label
            out.unlink()
        else:
            seen.append(moment)
        strays = [n for n in os.listdir(tmp_path) if n not in (src.name, name)]
        assert all(n.startswith(".") and n.endswith(".tmp") for n in strays), (label, strays)
        for n in strays:  # a killed process cannot clean up; its hidden temporary file is all it leaves
            os.unlink(tmp_path / n)
        assert (src.read_bytes(), src.stat().st_mtime_ns) == input_before, label
    assert "temp+delay" in seen  # killed with a complete temporary file not yet renamed: no output


def test_a_terminated_process_removes_its_temporary_file(big, tmp_path, tiny_weights):
    src_dir, _ = big
    src = tmp_path / "in.sic"
    src.write_bytes((src_dir / "big.sic").read_bytes())
    proc = _start(["decompress", src, tmp_path / "out.png", "--model", tiny_weights], slow_fsync=5)
    assert _kill_when(proc, tmp_path, "out.png", "temp+delay", 0.3, sig=signal.SIGTERM) == "temp seen"
    assert proc.returncode == 143 and "sicodec: terminated" in proc.stderr.read()
    assert os.listdir(tmp_path) == ["in.sic"]
