"""The shipped weights format: float16, the rate networks' conv weights in int8 (one scale per row)."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import sicodec
from conftest import make_tiny_model, make_tiny_sic
from sicodec.errors import ModelError
from sicodec.models.weights import INT8_SCALE, load_weights, save_weights


@pytest.mark.parametrize("make", [make_tiny_model, make_tiny_sic])
def test_rate_networks_ship_in_int8_and_load_within_half_a_step(tmp_path, make):
    model = make()
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    with safe_open(str(path), framework="pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    own = model.state_dict()
    int8 = {k for k, v in own.items() if v.ndim == 4 and k.split(".")[0] in model.int8_parts}
    assert int8 and {k.split(".")[0] for k in int8} == {"h_a", "h_s"}
    assert {k for k, d in dtypes.items() if d == "I8"} == int8
    scaled = {k[: -len(INT8_SCALE)] for k, d in dtypes.items() if k.endswith(INT8_SCALE) and d == "F32"}
    assert scaled == int8
    assert all(dtypes[k] == "F16" for k in own if k not in int8 and own[k].is_floating_point())
    loaded, _ = load_weights(path)
    scales = load_file(str(path))
    for k, v in loaded.state_dict().items():
        if k in int8:
            step = scales[k + INT8_SCALE].view(-1, *[1] * (v.ndim - 1))
            assert (v - own[k]).abs().le(step / 2 + 1e-7).all(), k
            peak = own[k].abs().flatten(1).amax(1)
            assert (v.abs().flatten(1).amax(1) - peak).abs().lt(1e-6).all(), k  # row peaks exact
        elif v.is_floating_point():
            assert torch.equal(v, own[k].half().float()), k


def test_a_file_made_with_compact_weights_decodes_with_them(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(make_tiny_model(), path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    data = sicodec.compress(image, model=path)
    assert sicodec.decompress(data, model=path).size == (64, 48)


def test_malformed_int8_weights_are_a_clear_model_error(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(make_tiny_model(), path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    name = next(k for k in tensors if k.endswith(INT8_SCALE))[: -len(INT8_SCALE)]
    scale = tensors[name + INT8_SCALE]
    unscaled = {k: v for k, v in tensors.items() if k != name + INT8_SCALE}
    cases = [
        ("int8 weights without their scales", unscaled),
        ("corrupt int8", dict(tensors, **{name + INT8_SCALE: scale[:-1].clone()})),
        ("corrupt int8", dict(tensors, **{name + INT8_SCALE: torch.full_like(scale, float("inf"))})),
        ("corrupt int8", dict(tensors, **{name: tensors[name].float()})),
        ("corrupt int8", dict(tensors, **{"nothing" + INT8_SCALE: scale.clone()})),
    ]
    for match, bad in cases:
        save_file(bad, str(path), metadata=meta)
        with pytest.raises(ModelError, match=match):
            load_weights(path)
