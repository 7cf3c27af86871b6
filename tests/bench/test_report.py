"""`sicodec report`: the results page, its BD-rate tables and its visual strip, from real results files."""

import pytest
from PIL import Image

from sicodec.bench import report
from sicodec.bench.bdrate import bd_rate
from sicodec.bench.results import save_results
from sicodec.bench.run import bench_classic
from sicodec.cli import main
from sicodec.metrics import psnr


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, crops_dir):
    from conftest import make_tiny_sic
    from sicodec.evaluate import evaluate_results
    from sicodec.models.weights import save_weights

    folder = tmp_path_factory.mktemp("results")
    for codec, qualities in (("jpeg-420", [10, 40, 70, 90]), ("webp", [10, 40, 70, 90])):
        save_results(bench_classic(codec, crops_dir, qualities=qualities, metrics=("psnr",)), folder / f"{codec}.json")
    weights = tmp_path_factory.mktemp("w") / "sic-test.safetensors"
    save_weights(make_tiny_sic(), weights, half=False)
    save_results(evaluate_results(str(weights), crops_dir, mode="uniform", metrics=("psnr",)), folder / "sic.json")
    return folder


def test_report_page_tables_and_figures(results_dir, crops_dir, tmp_path):
    page = report.write_report(results_dir, tmp_path / "docs" / "results.md", images_dir=crops_dir,
                               strip_image="kodim23.png", target_bpp=1.0, box=(8, 8, 64))
    text = page.read_text()
    results = {r["name"]: r for r in report.load_folder(results_dir)}
    assert list(results)[:2] == ["jpeg-420", "webp"]  # classic codecs first
    expected = f"| webp | {bd_rate(results['jpeg-420'], results['webp'], 'psnr'):+.1f} % | - |"
    assert expected in text
    for section in ("## Rate-quality curves", "## BD-rate", "## Visual comparison", "## Points", "### sic-test"):
        assert section in text
    for figure in ("rd.png", "strip.png"):
        with Image.open(tmp_path / "docs" / "results" / figure) as im:
            assert im.size[0] > 300
        assert f"](results/{figure})" in text


def test_strip_shows_each_codec_nearest_the_target_and_every_level(results_dir, crops_dir):
    results = report.load_folder(results_dir)
    entries = report.strip_entries(results, "kodim23.png", target_bpp=1.0)
    names = [r["name"] for r, _, _ in entries]
    assert names == ["jpeg-420", "webp"] + ["sic-test (uniform)"] * 4  # progressive results name their fill mode
    for r, point, bpp in entries[:2]:
        rows = [row for row in r["per_image"] if row["image"] == "kodim23.png"]
        assert bpp == min((row["bpp"] for row in rows), key=lambda b: abs(b - 1.0))
        # the crop shown is the point that was measured: same pixels, same PSNR
        measured = next(row for row in rows if row["point"] == point)
        shown = report.reconstruct(r, point, crops_dir / "kodim23.png")
        assert psnr(Image.open(crops_dir / "kodim23.png").convert("RGB"), shown) == pytest.approx(measured["psnr-rgb"])
    sic_rows = {row["point"]: row for row in results[-1]["per_image"] if row["image"] == "kodim23.png"}
    for r, level, _ in entries[2:]:
        shown = report.reconstruct(r, level, crops_dir / "kodim23.png")
        assert psnr(Image.open(crops_dir / "kodim23.png").convert("RGB"), shown) == pytest.approx(sic_rows[level]["psnr-rgb"])


def test_report_command_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.md")]) == 1
    assert "no results JSON" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty"), "--crop", "1,2"]) == 1
    assert "--crop must be X,Y,SIZE" in capsys.readouterr().err


def test_perceptual_bd_rates_are_against_the_published_perceptual_codecs(tmp_path):
    from sicodec.bench.results import make_results

    rows = [{"image": "a.png", "point": level, "bpp": 0.05 * level, "psnr-rgb": 24.0 + level, "lpips": 0.2 / level,
             "dists": 0.15 / level, "encoding_time": 0.1, "decoding_time": 0.1} for level in range(1, 9)]
    folder = tmp_path / "results"
    folder.mkdir()
    save_results(make_results("sic-x (uniform)", "synthetic", rows, point_key="level"), folder / "sic.json")
    text = report.write_report(folder, tmp_path / "results.md").read_text()
    sections = {part.split("\n", 1)[0]: part for part in text.split("### ")}
    for metric in ("lpips", "dists"):
        header = sections[metric].split("\n")[2]
        assert "vs MS-ILLM |" in header and "vs CompressAI" not in header
        ours = bd_rate(report.load_reference("kodak/ms-illm"), report.load_folder(folder)[0], metric)
        row = next(line for line in sections[metric].split("\n") if line.startswith("| sic-x (uniform) |"))
        assert row.split(" | ")[header.split(" | ").index("vs MS-ILLM")] == f"{ours:+.1f} %"
    assert "vs CompressAI" in sections["psnr"].split("\n")[2] and "MS-ILLM" not in sections["psnr"].split("\n")[2]
