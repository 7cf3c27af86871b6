"""The command line: the commands work, errors are one line with a non-zero exit, outputs are safe."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sicodec.cli import main
from sicodec.metrics.classic import psnr


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


def test_decompressing_to_a_lossy_format_loses_little_more(capsys, tmp_path, image, tiny_weights):
    sic = tmp_path / "a.sic"
    assert _run(capsys, "compress", image, sic, "--model", tiny_weights)[0] == 0
    decoded = {}
    for ext in ("png", "webp", "jpg", "avif", "tif", "bmp", "ppm", "tga", "jp2"):
        assert _run(capsys, "decompress", sic, tmp_path / f"a.{ext}", "--model", tiny_weights)[0] == 0
        decoded[ext] = np.asarray(Image.open(tmp_path / f"a.{ext}").convert("RGB"))
    for ext in ("webp", "tif", "bmp", "ppm", "tga", "jp2"):  # WebP is written lossless
        assert np.array_equal(decoded[ext], decoded["png"]), ext
    for ext in ("jpg", "avif"):  # at the formats' defaults (quality 75, 4:2:0) these noisy pixels fall below 33 dB
        assert psnr(decoded[ext], decoded["png"]) > 33, ext


def test_decompress_refuses_formats_that_would_change_the_image(capsys, tmp_path, image, tiny_weights):
    sic = tmp_path / "a.sic"
    assert _run(capsys, "compress", image, sic, "--model", tiny_weights)[0] == 0
    for name in ("a.gif", "a.ico", "a.pdf", "a.xpm", "a.sic2", "b.sic"):  # palette, resized, re-encoded, unknown
        code, out, err = _run(capsys, "decompress", sic, tmp_path / name, "--model", tiny_weights, "--force")
        assert code == 1 and err.count("\n") == 1 and "write one of .png" in err, name
    assert sorted(os.listdir(tmp_path)) == ["a.sic", "in.png"]
    assert _run(capsys, "decompress", sic, tmp_path / "plain", "--model", tiny_weights)[0] == 0
    assert Image.open(tmp_path / "plain").format == "PNG"  # no extension: PNG


def test_format_chooses_the_image_format_of_stdout_folders_and_bare_names(capsys, monkeypatch, tmp_path, image,
                                                                          tiny_weights):
    sic, png = tmp_path / "a.sic", tmp_path / "a.png"
    assert _run(capsys, "compress", image, sic, "--model", tiny_weights)[0] == 0
    assert _run(capsys, "decompress", sic, png, "--model", tiny_weights)[0] == 0
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    assert _run(capsys, "decompress", sic, "-", "--format", "webp", "--model", tiny_weights)[0] == 0
    webp = Image.open(io.BytesIO(stdout.buffer.getvalue()))
    assert webp.format == "WEBP" and np.array_equal(np.asarray(webp.convert("RGB")), np.asarray(Image.open(png)))
    monkeypatch.undo()
    assert _run(capsys, "decompress", tmp_path, tmp_path / "out", "--format", "JPEG", "--model", tiny_weights)[0] == 0
    assert os.listdir(tmp_path / "out") == ["a.jpg"] and Image.open(tmp_path / "out" / "a.jpg").format == "JPEG"
    assert _run(capsys, "decompress", sic, tmp_path / "bare", "--format", "tiff", "--model", tiny_weights)[0] == 0
    assert Image.open(tmp_path / "bare").format == "TIFF"
    for args, message in ((("-", "--format", "gif"), "--format gif: not an output format; choose one of png webp"),
                          ((tmp_path / "b.png", "--format", "jpg"), "b.png: the extension says PNG but --format "
                                                                     "asks for JPEG; name it b.jpg")):
        code, out, err = _run(capsys, "decompress", sic, *args, "--model", tiny_weights)
        assert code == 1 and err.count("\n") == 1 and message in err, args
    assert sorted(os.listdir(tmp_path)) == ["a.png", "a.sic", "bare", "in.png", "out"]


def test_the_output_defaults_to_the_inputs_name_beside_it(capsys, tmp_path, image, tiny_weights):
    original = image.read_bytes()
    assert _run(capsys, "compress", image, "--model", tiny_weights)[0] == 0
    sic = tmp_path / "in.sic"
    assert sic.read_bytes()[:4] == b"\x89SIC"
    code, _, err = _run(capsys, "decompress", sic, "--model", tiny_weights)  # in.png is the user's own image
    assert code == 1 and "in.png: already exists" in err and image.read_bytes() == original
    assert _run(capsys, "decompress", sic, "--format", "webp", "--model", tiny_weights)[0] == 0
    assert Image.open(tmp_path / "in.webp").format == "WEBP"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "b.png").write_bytes(original)
    assert _run(capsys, "compress", folder, "--model", tiny_weights)[0] == 0  # a folder's outputs go into it
    assert sorted(os.listdir(folder)) == ["b.png", "b.sic"]
    (folder / "b.png").unlink()
    assert _run(capsys, "decompress", folder, "--model", tiny_weights)[0] == 0
    assert sorted(os.listdir(folder)) == ["b.png", "b.sic"]
    for command in ("compress", "decompress"):  # stdin has no name to derive one from
        code, _, err = _run(capsys, command, "-", "--model", tiny_weights)
        assert code == 1 and err.count("\n") == 1 and "the input is stdin, so name the output" in err, command


def test_sic_outputs_named_as_images_are_refused(capsys, tmp_path, image, tiny_weights):
    for name in ("a.png", "a.JPG", "a.webp"):  # .sic bytes under an image's name: no viewer could open them
        code, out, err = _run(capsys, "compress", image, tmp_path / name, "--model", tiny_weights)
        assert code == 1 and err.count("\n") == 1 and "writes a .sic file" in err and "a.sic" in err, name
    assert sorted(os.listdir(tmp_path)) == ["in.png"]
    for name in ("a.sic", "a.bin", "plain"):
        assert _run(capsys, "compress", image, tmp_path / name, "--model", tiny_weights)[0] == 0, name


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
    ["compress", "in.png", "x.sic", "--device", "cuda:64"],
    ["decompress", "in.png", "out.png", "--device", "bogus"],
    ["compress", "in.png", "x.sic", "--model", "sic", "--refine", "5"],  # SIC cannot refine
    ["compress", "in.png", "x.sic", "--model", "hyperprior", "--refine", "100000"],
    ["roundtrip", "in.png", "--model", "hyperprior", "--refine", "-1"],
])
def test_errors_are_one_line_and_non_zero(capsys, tmp_path, image, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *args)
    errors = [line for line in err.splitlines() if line.startswith("sicodec: error:")]
    assert code == 1 and len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err
    assert all(line.startswith("sicodec: ") for line in err.splitlines())


@pytest.mark.parametrize("command", [["compress", "x.sic"], ["roundtrip"]])
def test_a_bad_input_is_the_only_message(capsys, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.png").write_text("not an image")
    for name, error in [("missing.png", "no such file\n"), ("bad.png", "cannot read image (")]:
        args = [command[0], name, *command[1:], "--model", "hyperprior"]  # a preliminary model: it has a note
        code, out, err = _run(capsys, *args)
        assert code == 1 and out == "" and err.startswith(f"sicodec: error: {name}: {error}")
        assert err.count("\n") == 1


def test_a_preliminary_model_says_so_with_its_steps_after_its_output_and_never_before_an_error(
        capsys, tmp_path, image, tiny_model):
    from sicodec.models.weights import save_weights

    weights = tmp_path / "prelim.safetensors"
    save_weights(tiny_model, weights, half=False, trained_steps=107300, status="preliminary")
    code, out, err = _run(capsys, "compress", image, tmp_path / "a.sic", "--model", weights)
    assert code == 0 and err == "sicodec: note: model hyperprior-test is preliminary (107,300 training steps); " \
                                "later weights will do better\n" and out.startswith(f"{tmp_path / 'a.sic'}: ")
    code, out, err = _run(capsys, "compress", image, tmp_path / "b.sic", "--model", weights, "--level", "2")
    assert code == 1 and err.startswith("sicodec: error: hyperprior-test is not progressive") and err.count("\n") == 1


def test_wrong_weights_give_a_clear_refusal(capsys, tmp_path, image, tiny_weights):
    sic = tmp_path / "a.sic"
    _run(capsys, "compress", image, sic, "--model", tiny_weights)
    code, _, err = _run(capsys, "decompress", sic, tmp_path / "b.png")  # registry weights differ
    assert code == 1 and err.strip().splitlines()[-1].startswith("sicodec: error:")


def test_roundtrip_prints_size_bpp_and_psnr(capsys, monkeypatch, image, tiny_weights):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp) or real_open(fp, *a, **k))
    code, out, _ = _run(capsys, "roundtrip", image, "--model", tiny_weights)
    assert code == 0 and "bpp" in out and "PSNR" in out
    assert opened == [image]  # the input is read once


def test_dash_is_stdin_and_stdout(tmp_path, image, tiny_weights):
    """`sicodec compress - - < in.png | sicodec decompress - - > out.png`: the same bytes and pixels as
    through named files, and the status lines on stderr, off the binary stream."""
    def cli(*args, stdin=b""):
        r = subprocess.run([sys.executable, "-m", "sicodec.cli", *map(str, args)], input=stdin, capture_output=True)
        assert r.returncode == 0, r.stderr
        return r.stdout, r.stderr.decode()

    sic, png = tmp_path / "a.sic", tmp_path / "a.png"
    cli("compress", image, sic, "--model", tiny_weights)
    cli("decompress", sic, png, "--model", tiny_weights)
    data, err = cli("compress", "-", "-", "--model", tiny_weights, stdin=image.read_bytes())
    assert data == sic.read_bytes() and "-: " in err and "bpp" in err
    decoded, err = cli("decompress", "-", "-", "--model", tiny_weights, stdin=data)
    assert decoded.startswith(b"\x89PNG") and "70x40" in err
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(decoded))), np.asarray(Image.open(png)))
    assert "70x40" in cli("info", "-", stdin=data)[0].decode()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "a.sic", "in.png"]


def test_dash_refuses_a_terminal_and_bad_bytes(capsys, monkeypatch, tmp_path, image, tiny_weights):
    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = _run(capsys, "compress", image, "-", "--model", tiny_weights)
    assert code == 1 and "stdout is a terminal" in err and out == ""
    monkeypatch.setattr(sys, "stdin", Terminal())
    code, _, err = _run(capsys, "info", "-")
    assert code == 1 and "stdin is a terminal" in err  # not a wait for typing
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not an image")))
    code, _, err = _run(capsys, "compress", "-", tmp_path / "x.sic", "--model", tiny_weights)
    assert code == 1 and err == "sicodec: error: -: cannot read image (cannot identify image file)\n"
    assert not (tmp_path / "x.sic").exists()


def test_models_lists_the_registry(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "hyperprior-q1" in out and "hyperprior-q8" in out


def test_installed_entry_point_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sicodec.cli", "info", str(tmp_path / "none.sic")], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("sicodec: error:") and "Traceback" not in r.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`sicodec models | head -1`: stdout closes under the command. Was "internal error: BrokenPipeError"
    and exit status 3; now nothing on stderr and the status of a tool stopped by SIGPIPE."""
    p = subprocess.Popen([sys.executable, "-m", "sicodec.cli", "models"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # long before the command, still importing, writes anything
    err = p.stderr.read().decode()
    assert p.wait() == 141 and err == ""


@pytest.fixture(scope="module")
def sic_weights(tmp_path_factory):
    from conftest import make_tiny_sic
    from sicodec.models.weights import save_weights

    path = tmp_path_factory.mktemp("sic") / "sic-test.safetensors"
    save_weights(make_tiny_sic(), path, half=False)
    return path


def test_progressive_commands(capsys, tmp_path, image, sic_weights):
    full, part = tmp_path / "full.sic", tmp_path / "part.sic"
    assert _run(capsys, "compress", image, full, "--model", sic_weights, "--seed", "3")[0] == 0
    code, out, _ = _run(capsys, "info", full)
    assert code == 0 and "level 4" in out and "z " in out
    assert _run(capsys, "truncate", full, part, "--level", "2")[0] == 0
    assert _run(capsys, "info", part)[1].count("level ") == 2
    lvl = tmp_path / "lvl.sic"
    assert _run(capsys, "compress", image, lvl, "--model", sic_weights, "--seed", "3", "--level", "2")[0] == 0
    assert lvl.read_bytes() == part.read_bytes()
    code, out, _ = _run(capsys, "decompress", full, tmp_path / "s.png", "--model", sic_weights,
                        "--level", "1", "--mode", "gaussian", "--samples", "2")
    assert code == 0 and (tmp_path / "s-1.png").is_file() and (tmp_path / "s-2.png").is_file()
    code, _, err = _run(capsys, "truncate", part, tmp_path / "x.sic", "--level", "3")
    assert code == 1 and "levels 1..2" in err
    code, _, err = _run(capsys, "truncate", full, tmp_path / "x.png", "--level", "1")
    assert code == 1 and "truncate writes a .sic file" in err and not (tmp_path / "x.png").exists()
    piped = subprocess.run([sys.executable, "-m", "sicodec.cli", "truncate", "-", "-", "--level", "2"],
                           input=full.read_bytes(), capture_output=True)
    assert piped.returncode == 0 and piped.stdout == part.read_bytes() and b"level 2" in piped.stderr
    code, _, err = _run(capsys, "compress", image, tmp_path / "b.sic", "--model", sic_weights, "--bpp", "0.0001")
    assert code == 1 and "no level fits" in err
