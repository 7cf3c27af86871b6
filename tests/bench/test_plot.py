import pytest

from sicodec.bench.plot import plot
from sicodec.bench.references import load_references
from sicodec.errors import SicodecError


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    mine = {"name": "mine", "description": "", "results": {"bpp": [0.2, 0.5], "psnr-rgb": [29.0, 33.0],
                                                           "dists": [0.12, 0.07]}}
    out = plot(load_references("kodak") + [mine], tmp_path / "rd.png", title="Kodak")
    assert out == tmp_path / "rd.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rd.png"]


def test_plot_refuses_bad_input(tmp_path):
    with pytest.raises(SicodecError, match="format"):
        plot([], tmp_path / "rd.gif")
    with pytest.raises(SicodecError, match="nothing to plot"):
        plot([], tmp_path / "rd.png")
    with pytest.raises(SicodecError, match="'bpp'"):
        plot([{"name": "x", "description": "", "results": {"psnr-rgb": [1.0]}}], tmp_path / "rd.png")
