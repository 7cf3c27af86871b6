import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sicodec.bench import classic
from sicodec.bench.results import load_results, save_results, validate_results
from sicodec.bench.run import bench_classic, list_images, quality_metrics
from sicodec.errors import SicodecError


@pytest.mark.parametrize("codec, qualities", [("jpeg-420", [20, 80]), ("webp", [20, 80])])
def test_bench_classic_end_to_end(crops_dir, metric_weights, tmp_path, codec, qualities):
    res = bench_classic(codec, crops_dir, qualities=qualities, metrics=metric_weights, progress=False)
    assert validate_results(res) is res
    r = res["results"]
    assert r["quality"] == qualities
    expected = {"quality", "bpp", "encoding_time", "decoding_time"} | {
        {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb"}.get(m, m) for m in metric_weights}
    assert set(r) == expected
    assert r["bpp"][0] < r["bpp"][1] and r["psnr-rgb"][0] < r["psnr-rgb"][1]
    if "lpips" in r:
        assert r["lpips"][0] > r["lpips"][1] and r["dists"][0] > r["dists"][1]
    rows = res["per_image"]
    assert [(row["image"], row["point"]) for row in rows] == [
        (img, q) for img in ("kodim01.png", "kodim23.png") for q in qualities]
    # every point is a real file: re-encoding gives the same number of bytes, and bpp is computed from them
    pixels = np.asarray(Image.open(crops_dir / "kodim01.png").convert("RGB"))
    for row in rows[:2]:
        assert len(classic.encode(codec, pixels, row["point"])) == row["bytes"]
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (128 * 96))
    assert r["bpp"][0] == pytest.approx((rows[0]["bpp"] + rows[2]["bpp"]) / 2)
    meta = res["meta"]
    assert meta["codec"]["save_options"]["quality"] == "<quality>" and meta["versions"]["pillow"]
    assert meta["dataset"]["images"] == 2 and meta["dataset"]["sizes"] == ["128x96"]
    assert "ms-ssim-note" in meta  # 128x96 crops get fewer MS-SSIM scales
    path = save_results(res, tmp_path / f"{codec}.json")
    assert load_results(path) == res


def test_workers_give_the_same_files(crops_dir):
    one = bench_classic("jpeg-444", crops_dir, qualities=[30, 60], metrics=("psnr",), progress=False)
    two = bench_classic("jpeg-444", crops_dir, qualities=[30, 60], metrics=("psnr",), workers=2, progress=False)
    assert [r["bytes"] for r in two["per_image"]] == [r["bytes"] for r in one["per_image"]]
    assert two["results"]["psnr-rgb"] == pytest.approx(one["results"]["psnr-rgb"])
    assert two["meta"]["timing"]["workers"] == 2


def test_missing_weights_fail_before_any_encoding(crops_dir, no_metric_weights):
    with pytest.raises(SicodecError, match="lpips_alex.safetensors not found.*leave lpips out"):
        bench_classic("jpeg-420", crops_dir, qualities=[50], metrics=("psnr", "lpips"), progress=False)


def test_missing_inception_weights_fail_before_any_encoding(crops_dir, no_metric_weights, monkeypatch):
    monkeypatch.setattr(classic, "encode_with", lambda *a: pytest.fail("encoded despite missing weights"))
    with pytest.raises(SicodecError, match="inception_fid.safetensors not found.*leave fid and kid out"):
        bench_classic("jpeg-420", crops_dir, qualities=[50], metrics=("psnr", "fid", "kid"), progress=False)


def test_fid_needs_images_that_give_patches(crops_dir, random_inception, monkeypatch):
    monkeypatch.setattr(classic, "encode_with", lambda *a: pytest.fail("encoded although FID cannot be measured"))
    with pytest.raises(SicodecError, match="at least 2 patches of 256x256.*give 0"):
        bench_classic("jpeg-420", crops_dir, qualities=[50], metrics=("fid",), progress=False)


@pytest.fixture(scope="module")
def patch_dir(tmp_path_factory):
    """Two 256x256 Kodak crops: one FID patch each."""
    from conftest import kodak

    folder = tmp_path_factory.mktemp("patches")
    for n, (x, y) in ((1, (200, 100)), (23, (300, 150))):
        with Image.open(kodak(n)) as im:
            im.convert("RGB").crop((x, y, x + 256, y + 256)).save(folder / f"kodim{n:02d}.png")
    return folder


def test_bench_with_fid_and_kid_per_quality(patch_dir, random_inception, tmp_path):
    """The whole path on a random-weight Inception: features from the workers, FID and KID per quality in
    "results", JSON-clean rows, a plot with their panels."""
    from sicodec.bench.plot import plot

    res = bench_classic("jpeg-420", patch_dir, qualities=[10, 90], metrics=("psnr", "fid", "kid"), progress=False)
    r = res["results"]
    assert list(r)[:6] == ["quality", "bpp", "psnr-rgb", "fid", "kid", "kid_std"]
    assert all(len(r[k]) == 2 and np.isfinite(r[k]).all() for k in ("fid", "kid", "kid_std"))
    assert all(v >= 0 for v in r["fid"]) and r["fid"] != [0.0, 0.0]
    assert res["meta"]["metrics"] == ["psnr-rgb", "fid", "kid"]
    assert "(2 patches of the originals)" in res["meta"]["fid-kid"]
    assert all(set(row) == {"image", "point", "bytes", "width", "height", "bpp", "psnr-rgb", "encoding_time",
                            "decoding_time"} for row in res["per_image"])
    assert load_results(save_results(res, tmp_path / "r.json")) == res
    assert plot([res], tmp_path / "rd.png").is_file()


def test_unavailable_codec_is_refused(crops_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)
    with pytest.raises(SicodecError, match="codec jxl is not available"):
        bench_classic("jxl", crops_dir, metrics=("psnr",), progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": ("psnr", "niqe")}, "unknown metric 'niqe'"),
    ({"metrics": ()}, "no metric"),
    ({"qualities": [50, 50]}, "repeated"),
    ({"qualities": [101]}, "quality must be"),
    ({"qualities": []}, "no quality"),
    ({"workers": 0}, "workers"),
])
def test_bad_arguments(crops_dir, kwargs, match):
    with pytest.raises(SicodecError, match=match):
        bench_classic("jpeg-420", crops_dir, **{"metrics": ("psnr",), "progress": False, **kwargs})


def test_image_listing(tmp_path, crops_dir):
    with pytest.raises(SicodecError, match="not a folder"):
        list_images(tmp_path / "nope")
    with pytest.raises(SicodecError, match="no image files"):
        list_images(tmp_path)
    files = list_images(crops_dir)
    assert [f.name for f in files] == ["kodim01.png", "kodim23.png"]
    assert list_images([files[1]]) == [files[1]]
    with pytest.raises(SicodecError, match="distinct file names.*kodim01.png"):
        list_images([files[0], files[0]])


def test_quality_metrics_keys():
    a = np.full((24, 24, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110
    m = quality_metrics(a, b, ("psnr", "ms-ssim"))
    assert list(m) == ["psnr-rgb", "ms-ssim-rgb"] and m["psnr-rgb"] > 40


def test_bench_modules_import_lean():
    code = ("import sys, sicodec.bench.run, sicodec.bench.plot, sicodec.bench.bdrate, sicodec.bench.references; "
            "bad = [m for m in ('matplotlib', 'scipy', 'pillow_heif', 'pillow_jxl') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
