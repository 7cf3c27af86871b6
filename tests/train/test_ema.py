"""`--ema`: a moving average of the weights beside the live ones, validated, resumed and exported."""

import pytest
import torch

import sicodec
from sicodec.cli import main
from sicodec.train import validate
from sicodec.train.export import export_checkpoint
from sicodec.train.loop import train


def _train(folder, out, steps, ema=None, **kw):
    return torch.load(train("hyperprior", str(folder), str(out), steps, lmbda=0.01, config={"N": 8, "M": 8},
                            batch=2, crop=64, checkpoint_every=2, log_every=1, ema=ema, **kw), weights_only=False)


def test_the_average_follows_the_live_weights_and_leaves_them_alone(folder, tmp_path):
    one, two = _train(folder, tmp_path / "1", 1), _train(folder, tmp_path / "2", 2)
    averaged = _train(folder, tmp_path / "ema", 2, ema=0.25)
    assert averaged["ema"]["decay"] == 0.25 and averaged["ema"]["updates"] == 2
    moved = False
    for k, live in two["model"].items():
        assert torch.equal(averaged["model"][k], live), k  # training itself is unchanged
        expected = 0.25 * one["model"][k] + 0.75 * live  # the first step's weights, then one EMA step
        torch.testing.assert_close(averaged["ema"]["weights"][k], expected, rtol=1e-6, atol=1e-7)
        moved |= not torch.equal(averaged["ema"]["weights"][k], live)
    assert moved
    assert averaged["recipe"]["stages"] == [{"from_step": 0, "lr": 1e-4, "batch": 2, "crop": 64, "ema": 0.25}]


def test_a_resumed_run_continues_the_same_average(folder, tmp_path):
    straight = _train(folder, tmp_path / "a", 4, ema=0.5)
    _train(folder, tmp_path / "b", 2, ema=0.5)
    resumed = _train(folder, tmp_path / "b", 4, ema=0.5)
    assert resumed["ema"]["updates"] == straight["ema"]["updates"] == 4
    for k, v in straight["ema"]["weights"].items():
        assert torch.equal(v, resumed["ema"]["weights"][k]), k


def test_validation_and_export_use_the_average(folder, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(validate.Validator, "run",
                        lambda self, model, *a, **k: seen.append({n: v.clone() for n, v in model.state_dict().items()})
                        or 1.0)
    state = _train(folder, tmp_path / "run", 2, ema=0.5, val=str(folder), val_every=2, val_metrics=("psnr",))
    assert len(seen) == 1
    for k, v in state["ema"]["weights"].items():
        assert torch.equal(seen[0][k], v), k
    out = export_checkpoint(tmp_path / "run" / "checkpoint.pt", "hyperprior-ema", tmp_path, half=False)
    exported = sicodec.load_model(out).state_dict()
    for k, v in state["ema"]["weights"].items():
        assert torch.equal(exported[k], v), k


def test_resuming_with_and_without_the_average_starts_and_drops_it(folder, tmp_path):
    _train(folder, tmp_path / "run", 2)
    started = _train(folder, tmp_path / "run", 4, ema=0.5)
    assert started["ema"]["updates"] == 2
    assert [s["ema"] for s in started["recipe"]["stages"]] == [None, 0.5]
    assert "ema" not in _train(folder, tmp_path / "run", 5)


@pytest.mark.parametrize("decay", ["0", "1", "1.5", "-0.1", "nan"])
def test_a_decay_outside_0_1_is_a_one_line_error(capsys, folder, tmp_path, decay):
    code = main(["train", "hyperprior", str(folder), str(tmp_path / "run"), "--steps", "1", "--lambda", "0.01",
                 "--config", '{"N": 8, "M": 8}', "--batch", "1", "--crop", "64", "--ema", decay])
    err = capsys.readouterr().err
    assert code == 1 and "decay" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
