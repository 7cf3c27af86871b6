"""`sicodec eval`: real files per level or quality, averaged into the results layout."""

import json

import pytest
from PIL import Image

from sicodec.bench.results import validate_results
from sicodec.cli import main
from sicodec.evaluate import parse_levels
from sicodec.errors import SicodecError
from conftest import kodak


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for n in (1, 4):
        Image.open(kodak(n)).crop((0, 0, 96, 80)).save(d / f"k{n}.png")
    return d


def test_eval_of_a_progressive_model_writes_valid_results(folder, tmp_path, capsys):
    from conftest import make_tiny_sic
    from sicodec.models.weights import save_weights

    weights = tmp_path / "sic-test.safetensors"
    save_weights(make_tiny_sic(), weights, half=False)
    out = tmp_path / "r.json"
    code = main(["eval", str(weights), str(folder), "--levels", "1,3", "--mode", "uniform", "--samples", "2",
                 "--metrics", "psnr", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    data = validate_results(json.loads(out.read_text()))
    r = data["results"]
    assert r["level"] == [1, 3] and r["bpp"][0] < r["bpp"][1] and len(data["per_image"]) == 4
    header = 8 * 150 / (96 * 80)  # container bytes are in the real rate only
    assert all(0 <= row["bpp"] - row["estimated_bpp"] < 0.05 * row["bpp"] + header for row in data["per_image"])


def test_eval_of_the_shipped_hyperprior_family(folder, tmp_path, capsys):
    from sicodec.codec import find_weights
    from sicodec.models.registry import REGISTRY

    if find_weights(REGISTRY["hyperprior-q4"]) is None:
        pytest.skip("no shipped hyperprior weights")
    out = tmp_path / "hp.json"
    assert main(["eval", "hyperprior", str(folder), "--metrics", "psnr", "-o", str(out)]) == 0
    data = validate_results(json.loads(out.read_text()))
    assert 4 in data["results"]["quality"] and data["results"]["psnr-rgb"][0] > 20


def test_levels_are_parsed_and_checked():
    assert parse_levels("all", 3) == [1, 2, 3] and parse_levels("3,1", 4) == [1, 3]
    for bad in ("0", "5", "a,b", ""):
        with pytest.raises(SicodecError):
            parse_levels(bad, 4)


def test_bench_bd_rate_and_plot_commands(folder, tmp_path, capsys):
    webp, jpeg = tmp_path / "webp.json", tmp_path / "jpeg.json"
    assert main(["bench", "webp", str(folder), "--qualities", "20,60,90", "--metrics", "psnr", "-o", str(webp)]) == 0
    assert main(["bench", "jpeg-420", str(folder), "--qualities", "20,60,90", "--metrics", "psnr", "-o", str(jpeg)]) == 0
    capsys.readouterr()
    assert main(["bd-rate", str(webp), str(webp)]) == 0
    assert "+0.00 %" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert main(["plot", str(webp), str(jpeg), "-o", str(tmp_path / "rd.png")]) == 0
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["bench", "no-such-codec", str(folder)]) == 1
