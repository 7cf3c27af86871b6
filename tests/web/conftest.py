"""Fixtures of the web page tests: a tiny progressive SIC model installed in a weights folder of its own."""

import pytest


@pytest.fixture(scope="session")
def sic_weights_dir(tmp_path_factory):
    """A folder holding `sic.safetensors`: the tiny untrained SIC of tests/conftest.py (4 levels)."""
    from sicodec.models.weights import save_weights
    from conftest import make_tiny_sic

    folder = tmp_path_factory.mktemp("web-weights")
    save_weights(make_tiny_sic(), folder / "sic.safetensors", half=False)
    return folder


@pytest.fixture
def installed_sic(sic_weights_dir, monkeypatch):
    """Registered model `sic` resolves to the tiny SIC (through $SICODEC_WEIGHTS), next to hyperprior-q4."""
    monkeypatch.setenv("SICODEC_WEIGHTS", str(sic_weights_dir))
    return sic_weights_dir
