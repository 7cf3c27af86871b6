"""Validation during training codes real files, and best.pt keeps the checkpoint that coded best."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.models.registry import build_model
from sicodec.train import validate
from sicodec.train.loop import train
from sicodec.train.loss import RateDistortionLoss


@pytest.fixture
def folders(make_images):
    return make_images("train", 4, 64, 72), make_images("val", 2, 64, 72, seed=1)


def _train(data, val, out, steps, **kw):
    return train("hyperprior", str(data), str(out), steps, lmbda=0.01, config={"N": 8, "M": 8}, batch=2, crop=64,
                 checkpoint_every=2, log_every=1, val=str(val), val_every=2, val_metrics=("psnr",), **kw)


def test_validation_measures_real_files_and_the_real_objective(folders, tmp_path):
    data, val = folders
    ckpt = _train(data, val, tmp_path / "run", 2)
    state = torch.load(ckpt, weights_only=False)
    model = build_model("hyperprior", **state["config"])
    model.load_state_dict(state["model"])
    model.eval()
    sizes, mses = [], []
    for path in sorted(val.iterdir()):
        coded = sicodec.compress(path, model=model)
        decoded = np.asarray(sicodec.decompress(coded, model=model), np.float64)
        sizes.append(8 * len(coded) / (64 * 72))
        mses.append(np.mean((decoded - np.asarray(Image.open(path), np.float64)) ** 2) / 255**2)
    objective = np.mean([0.01 * 255**2 * m + b for m, b in zip(mses, sizes)])
    rows = list(csv.DictReader(open(tmp_path / "run" / "validation.csv")))
    assert [r["step"] for r in rows] == ["2"]
    assert float(rows[0]["bpp"]) == pytest.approx(np.mean(sizes), abs=1e-5)
    assert float(rows[0]["objective"]) == pytest.approx(objective, rel=1e-4)
    assert (tmp_path / "run" / "best.pt").is_file()


def test_best_checkpoint_is_the_lowest_validation_objective(folders, tmp_path, monkeypatch):
    data, val = folders
    scores = iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(validate.Validator, "run", lambda self, *a, **k: next(scores))
    _train(data, val, tmp_path / "run", 6)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["step"] == 4 and best["best_score"] == 1.0
    last = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert last["step"] == 6 and last["best_score"] == 1.0


def test_rate_distortion_validation_score():
    rows = [{"bpp": 0.5, "psnr-rgb": 30.0}, {"bpp": 1.5, "psnr-rgb": 40.0}]
    expected = np.mean([0.02 * 255**2 * 10 ** (-3.0) + 0.5, 0.02 * 255**2 * 10 ** (-4.0) + 1.5])
    assert RateDistortionLoss(0.02).validation_score(rows) == pytest.approx(expected)


def test_svi_validation_score_weights_each_level():
    from sicodec.train.svi import SVILoss, paper_weights

    rows = [{"point": 1, "bpp": 0.1, "psnr-rgb": 20.0, "lpips": 0.4}, {"point": 2, "bpp": 0.3, "psnr-rgb": 30.0, "lpips": 0.2}]
    loss = SVILoss(2, lpips=object())
    expected = 0.0
    for r in rows:
        w = paper_weights(r["point"], 2)
        expected += w.rate * r["bpp"] + w.distortion * 10 ** (-r["psnr-rgb"] / 10) + w.perception * r["lpips"]
    assert loss.validation_score(rows) == pytest.approx(expected / 2)
    assert SVILoss(2).validation_score(rows) < loss.validation_score(rows)  # no LPIPS term without LPIPS


def test_data_set_metrics_are_refused_for_validation(folders):
    with pytest.raises(sicodec.errors.SicodecError, match="FID and KID are data-set metrics"):
        validate.Validator(str(folders[1]), metrics=("psnr", "fid"))


def test_validation_decodes_in_the_fill_the_loss_trains_with(make_images, monkeypatch, tmp_path):
    from conftest import make_tiny_sic
    from sicodec.train.svi import SVILoss

    seen = []
    real = validate.evaluate_image
    monkeypatch.setattr(validate, "evaluate_image", lambda *a: seen.append(a[3]) or real(*a))
    validator = validate.Validator(str(make_images("val", 1, 64, 64)), metrics=("psnr",))
    for fill in ("ancestral", "uniform"):
        validator.run(make_tiny_sic(), SVILoss(4, fill=fill), 1, tmp_path)
    assert seen == ["ancestral", "uniform"]
