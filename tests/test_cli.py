"""The command line: the commands work, errors are one line with a non-zero exit, outputs are safe."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sicodec.cli import main


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_info_decompress(capsys, tmp_path, image, tiny_weights):
    sic, png = tmp_path / "a.sic", tmp_path / "a.png"
    code, out, err = _run(capsys, "compress", image, sic, "--model", tiny_weights)
    assert code == 0 and "bpp" in out and "untrained" in err
    code, out, _ = _run(capsys, "info", sic)
    assert code == 0 and "70x40" in out and "section 2" in out and "2 of 2" in out
    code, out, _ = _run(capsys, "decompress", sic, png, "--model", tiny_weights)
    assert code == 0 and Image.open(png).size == (70, 40)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "a.sic", "in.png"]  # no temporary files left


def test_outputs_are_not_overwritten_without_force(capsys, tmp_path, image, tiny_weights):
    sic = tmp_path / "a.sic"
    sic.write_bytes(b"precious")
    code, _, err = _run(capsys, "compress", image, sic, "--model", tiny_weights)
    assert code == 1 and "--force" in err and sic.read_bytes() == b"precious"
    code, _, _ = _run(capsys, "compress", image, sic, "--model", tiny_weights, "--force")
    assert code == 0 and sic.read_bytes()[:4] == b"\x89SIC"


@pytest.mark.parametrize("args", [
    ["info", "missing.sic"],
    ["decompress", "in.png", "out.png"],  # not a .sic file
    ["compress", "missing.png", "x.sic"],
    ["compress", "in.png", "x.sic", "--model", "no-such-model"],
    ["compress", "in.png", "x.sic", "--model", "hyperprior", "--quality", "99"],
    ["compress", "in.png", "nofolder/x.sic"],
])
def test_errors_are_one_line_and_non_zero(capsys, tmp_path, image, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *args)
    assert code == 1 and err.count("\n") == 1 and err.startswith("sicodec: error:") and "Traceback" not in err


def test_wrong_weights_give_a_clear_refusal(capsys, tmp_path, image, tiny_weights):
    sic = tmp_path / "a.sic"
    _run(capsys, "compress", image, sic, "--model", tiny_weights)
    code, _, err = _run(capsys, "decompress", sic, tmp_path / "b.png")  # registry weights differ
    assert code == 1 and err.strip().splitlines()[-1].startswith("sicodec: error:")


def test_roundtrip_prints_size_bpp_and_psnr(capsys, image, tiny_weights):
    code, out, _ = _run(capsys, "roundtrip", image, "--model", tiny_weights)
    assert code == 0 and "bpp" in out and "PSNR" in out


def test_models_lists_the_registry(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "hyperprior-q1" in out and "hyperprior-q8" in out


def test_installed_entry_point_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sicodec.cli", "info", str(tmp_path / "none.sic")], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("sicodec: error:") and "Traceback" not in r.stderr
