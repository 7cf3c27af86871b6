"""Real file size vs the model's own estimate on real images, with the shipped (trained) weights."""

import numpy as np
import pytest
import torch
from PIL import Image

import sicodec
from sicodec.codec import _to_tensor, find_weights
from sicodec.models.registry import REGISTRY
from sicodec.entropy.ops import bits
from conftest import kodak


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if find_weights(s) is not None and s.arch == "hyperprior"])
def test_coded_size_is_within_half_a_percent_of_the_estimate(name):
    model = sicodec.load_model(name)
    for n in (3, 19):
        image = Image.open(kodak(n)).convert("RGB")
        data = sicodec.compress(image, model=model)
        header = len(data) - sum(len(s) for s in sicodec.bitstream.parse(data).sections)
        with torch.no_grad():
            estimate = float(bits(model(_to_tensor(np.asarray(image), model.stride))["likelihoods"]))
        coded = 8 * (len(data) - header)
        assert coded <= estimate * 1.005 + 64, (n, coded, estimate)
