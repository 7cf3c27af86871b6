"""The training loop: it lowers the loss, checkpoints, and resumes where it stopped."""

import numpy as np
import pytest
import torch
from PIL import Image

from sicodec.errors import SicodecError
from sicodec.train.loop import train


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
