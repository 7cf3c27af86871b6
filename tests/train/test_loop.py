"""The training loop: it lowers the loss, checkpoints, and resumes where it stopped."""

import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from sicodec.errors import SicodecError
from sicodec.train.data import ImageFolder
from sicodec.train.loop import TrainingInterrupted, train


def _train(folder, out, steps):
    return train("hyperprior", str(folder), str(out), steps, lmbda=0.01, config={"N": 8, "M": 8},
                 batch=2, crop=64, checkpoint_every=2, log_every=1)


def test_resume_continues_the_same_run(folder, tmp_path):
    straight = torch.load(_train(folder, tmp_path / "a", 4), weights_only=False)
    _train(folder, tmp_path / "b", 2)
    resumed = torch.load(_train(folder, tmp_path / "b", 4), weights_only=False)
    assert straight["step"] == resumed["step"] == 4
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    assert len((tmp_path / "b" / "log.csv").read_text().splitlines()) == 5


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SicodecError, match="no images"):
        _train(tmp_path / "empty", tmp_path / "out", 1)


def test_export_writes_loadable_weights_and_a_card(folder, tmp_path):
    import json

    import sicodec
    from sicodec.train.export import export_checkpoint

    ckpt = _train(folder, tmp_path / "a", 2)
    out = export_checkpoint(ckpt, "hyperprior-test", tmp_path, status="preliminary", card={"data": "test"})
    model = sicodec.load_model(out)
    assert model.status == "preliminary" and model.trained_steps == 2 and model.name == "hyperprior-test"
    card = json.loads((tmp_path / "hyperprior-test.json").read_text())
    assert card["steps"] == 2 and card["data"] == "test" and card["config"] == {"N": 8, "M": 8}
    image = Image.fromarray(np.zeros((30, 30, 3), np.uint8))
    assert sicodec.decompress(sicodec.compress(image, model=out), model=out).size == (30, 30)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_bit_for_bit(folder, tmp_path, monkeypatch,
                                                                                        signum):
    straight = torch.load(_train(folder, tmp_path / "a", 6), weights_only=False)
    calls = []
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # SIG_IGN under nohup

    def read_and_signal(self, i, read=ImageFolder.__getitem__):
        calls.append(i)
        if len(calls) == 5:  # during step 3 (batch 2): that step still completes
            os.kill(os.getpid(), signum)
        return read(self, i)

    with monkeypatch.context() as m:
        m.setattr(ImageFolder, "__getitem__", read_and_signal)
        with pytest.raises(TrainingInterrupted, match="after step 3"):
            _train(folder, tmp_path / "b", 6)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # handlers given back
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 3  # not a multiple of 2
    resumed = torch.load(_train(folder, tmp_path / "b", 6), weights_only=False)
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
