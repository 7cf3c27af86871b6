"""`sicodec eval`: real files per level or quality, averaged into the results layout."""

import json
import math

import numpy as np
import pytest
import torch
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
    assert data["name"] == "sic-test (uniform)" and data["meta"]["models"] == [str(weights)]  # one name per fill mode
    assert r["level"] == [1, 3] and r["bpp"][0] < r["bpp"][1] and len(data["per_image"]) == 4
    header = 8 * 150 / (96 * 80)  # container bytes are in the real rate only
    assert all(0 <= row["bpp"] - row["estimated_bpp"] < 0.05 * row["bpp"] + header for row in data["per_image"])


def test_eval_measures_the_fill_of_a_plain_decode_by_default(folder, tmp_path, capsys):
    from conftest import make_tiny_sic
    from sicodec import codec
    from sicodec.evaluate import evaluate_results
    from sicodec.models.sic import DEFAULT_FILL_MODE
    from sicodec.models.weights import save_weights

    weights = tmp_path / "sic-test.safetensors"
    save_weights(make_tiny_sic(), weights, half=False)
    data = evaluate_results(str(weights), folder, levels="1", metrics=("psnr",))
    assert data["meta"]["mode"] == DEFAULT_FILL_MODE and data["name"] == f"sic-test ({DEFAULT_FILL_MODE})"
    row = next(r for r in data["per_image"] if r["image"] == "k1.png")
    model = codec.load_model(str(weights))
    coded = codec.truncate(codec.compress(folder / "k1.png", model=model), 1)
    plain = np.asarray(codec.decompress(coded, model=model).convert("RGB"), dtype=np.float64)  # the default seed
    reference = np.asarray(Image.open(folder / "k1.png").convert("RGB"), dtype=np.float64)
    assert row["psnr-rgb"] == pytest.approx(10 * math.log10(255**2 / np.mean((plain - reference) ** 2)), abs=1e-6)


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


def test_a_wrong_folder_is_named_before_missing_metric_weights(tmp_path, monkeypatch):
    """Without LPIPS weights installed, a typo in the folder was reported as the missing weights (eval and bench)."""
    import sicodec.bench.run
    import sicodec.evaluate
    from sicodec.bench.run import bench_classic
    from sicodec.evaluate import evaluate_results

    def missing(keys):
        raise SicodecError("metric weights lpips_alex.safetensors not found")

    for module in (sicodec.evaluate, sicodec.bench.run):
        monkeypatch.setattr(module, "check_metric_weights", missing)
    for measure in (lambda: evaluate_results("hyperprior", tmp_path / "kodakk", metrics=("psnr", "lpips")),
                    lambda: bench_classic("webp", tmp_path / "kodakk", metrics=("psnr", "lpips"))):
        with pytest.raises(SicodecError, match="not a folder of images"):
            measure()


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


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core machine more threads only contend
    yield
    torch.set_num_threads(before)


def test_eval_measures_fid_and_kid_per_level(tmp_path, random_inception, one_thread, monkeypatch):
    """FID and KID over both images per level, with a random-weight Inception (the plumbing, not the values);
    with sampled decoding every sample's patches count."""
    from conftest import make_tiny_sic
    from sicodec.bench import fidkid
    from sicodec.evaluate import evaluate_results
    from sicodec.models.weights import save_weights

    images = tmp_path / "imgs"
    images.mkdir()
    for n in (1, 4):
        Image.open(kodak(n)).convert("RGB").crop((0, 0, 256, 256)).save(images / f"k{n}.png")
    weights = tmp_path / "sic-test.safetensors"
    save_weights(make_tiny_sic(), weights, half=False)
    seen = []
    per_point = fidkid.per_point

    def spy(rows, keys):
        seen.extend(r[fidkid.FEATURES] for r in rows)
        return per_point(rows, keys)

    monkeypatch.setattr(fidkid, "per_point", spy)
    data = evaluate_results(str(weights), images, levels="1,4", mode="uniform", samples=2,
                            metrics=("psnr", "fid", "kid"))
    r = data["results"]
    assert r["level"] == [1, 4]
    assert all(len(r[k]) == 2 and all(map(math.isfinite, r[k])) for k in ("fid", "kid", "kid_std"))
    # 1 patch per image; level 1 of 4 is sampled twice, level 4 (the whole file) decoded once
    assert sorted((len(ref), len(dec)) for ref, dec in seen) == [(1, 1), (1, 1), (1, 2), (1, 2)]
    assert not any(fidkid.FEATURES in row for row in data["per_image"])
    json.dumps(data, allow_nan=False)
