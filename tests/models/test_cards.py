"""The shipped weights' cards describe the shipped weights: steps and status as in the file, and Kodak
numbers equal to the committed results they cite (a card left stale after new weights fails here)."""

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from sicodec.bench.results import load_results
from sicodec.models.registry import REGISTRY, WEIGHTS_DIR

RESULTS = Path(__file__).resolve().parents[2] / "results" / "kodak"
SHIPPED = [s for s in REGISTRY.values() if s.weights and (WEIGHTS_DIR / s.weights).is_file()]


def card(spec) -> dict:
    return json.loads((WEIGHTS_DIR / spec.weights).with_suffix(".json").read_text())


def test_the_package_ships_the_default_model_and_three_hyperprior_rates():
    names = {s.name for s in SHIPPED}
    assert "sic" in names and len([n for n in names if n.startswith("hyperprior-")]) >= 3


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.name)
def test_card_matches_the_weights_file(spec):
    with safe_open(str(WEIGHTS_DIR / spec.weights), framework="pt") as f:
        meta = f.metadata()
        int8 = sorted({k.split(".")[0] for k in f.keys() if f.get_slice(k).get_dtype() == "I8"})
    c = card(spec)
    compact = f"float16; the conv weights of {', '.join(int8)} int8, one float32 scale per row"
    assert c["precision"] == (compact if int8 else "float16")
    assert (c["name"], c["arch"]) == (spec.name, spec.arch) == (meta["sicodec.name"], meta["sicodec.arch"])
    assert c["steps"] == int(meta["sicodec.trained_steps"])
    assert c["status"] == meta["sicodec.status"]


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.name)
def test_card_kodak_numbers_are_the_committed_results(spec):
    kodak = card(spec)["kodak"]
    if spec.arch == "hyperprior":
        results = load_results(RESULTS / "sicodec-hyperprior.json")["results"]
        i = results["quality"].index(spec.quality)
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "lpips", "dists"):
            assert kodak[key] == pytest.approx(results[key][i], abs=5e-5), key
    else:
        for mode in ("ancestral", "mean", "uniform"):
            results = load_results(RESULTS / f"sicodec-sic-{mode}.json")["results"]
            assert kodak[mode]["level"] == results["level"]
            for key in ("bpp", "psnr-rgb"):
                assert kodak[mode][key] == pytest.approx(results[key], abs=5e-5), (mode, key)


@pytest.mark.parametrize("spec", [s for s in SHIPPED if s.arch == "hyperprior"], ids=lambda s: s.name)
def test_card_rounds_chain_up_to_the_shipped_steps(spec):
    """Each training round starts from the weights the round before shipped, and the last one's are in the file."""
    c = card(spec)
    rounds = c["rounds"]
    assert len({r["round"] for r in rounds}) == len(rounds)
    trained = [r for r in rounds if "init_steps" in r]
    shipped_steps = [r["init_steps"] + r.get("best_step", r["steps"]) for r in trained]
    for after, steps_before in zip(trained[1:], shipped_steps):
        assert after["init_steps"] == steps_before, after["round"]
    assert c["steps"] == shipped_steps[-1]
    for r in rounds:
        assert {"bpp", "psnr-rgb"} <= r["kodak_before"].keys(), r["round"]
