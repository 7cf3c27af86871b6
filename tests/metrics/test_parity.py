"""LPIPS, DISTS and PSNR match the reference implementations' values in shared/metric-parity/expected.csv."""

import csv
from pathlib import Path

import pytest
from PIL import Image

from sicodec import metrics

PARITY = Path(__file__).resolve().parents[3] / "shared" / "metric-parity"

TOL = 1e-3


def _rows():
    path = PARITY / "expected.csv"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not available"))]
    with open(path, newline="") as f:
        return [pytest.param(row, id=row["image"]) for row in csv.DictReader(f)]


ROWS = _rows()


def _pair(row):
    name = row["image"]
    return Image.open(PARITY / "ref" / f"{name}.png"), Image.open(PARITY / "dist" / f"{name}.png")


@pytest.mark.parametrize("row", ROWS)
def test_psnr_parity(row):
    assert metrics.psnr(*_pair(row)) == pytest.approx(float(row["psnr_rgb"]), abs=TOL)


@pytest.mark.parametrize("row", ROWS)
def test_lpips_parity(row, weights_dir):
    assert metrics.lpips(*_pair(row), weights=weights_dir) == pytest.approx(float(row["lpips_alex_v0.1"]), abs=TOL)


@pytest.mark.parametrize("row", ROWS)
def test_dists_parity(row, weights_dir):
    assert metrics.dists(*_pair(row), weights=weights_dir) == pytest.approx(float(row["dists"]), abs=TOL)
