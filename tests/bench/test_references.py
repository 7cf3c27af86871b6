import math

import pytest

from sicodec.bench.bdrate import bd_rate
from sicodec.bench.references import list_references, load_reference, load_references
from sicodec.errors import SicodecError

EXPECTED = {"kodak/compressai-hyperprior-mse", "kodak/hific", "kodak/ms-illm", "kodak/ms-illm-nogan"}


def test_references_list_load_and_validate():
    assert set(list_references()) >= EXPECTED
    assert set(list_references("kodak")) >= EXPECTED and list_references("clic") == []
    for ref in load_references("kodak"):
        assert ref["meta"]["source"] and ref["meta"]["dataset"] == "kodak"
        assert "Published" in ref["description"]


def test_hyperprior_reference_numbers():
    r = load_reference("compressai-hyperprior-mse")["results"]
    assert r["bpp"] == [0.1313, 0.2089, 0.3199, 0.4784, 0.6687, 0.9388, 1.2592, 1.6602]
    assert r["psnr-rgb"] == [27.58, 29.20, 30.97, 32.84, 34.53, 36.74, 38.58, 40.56]


def test_reference_metrics_and_bd_rate():
    illm, nogan, hific = (load_reference(f"kodak/{n}") for n in ("ms-illm", "ms-illm-nogan", "hific"))
    assert {"lpips", "dists"} <= set(illm["results"]) and "dists" not in hific["results"]
    # the GAN model needs far fewer bits than its no-GAN twin for the same DISTS
    assert bd_rate(nogan, illm, "dists") < -30
    assert math.isfinite(bd_rate(load_reference("compressai-hyperprior-mse"), nogan, "psnr"))


def test_unknown_reference():
    with pytest.raises(SicodecError, match="unknown reference 'bpg'.*kodak/hific"):
        load_reference("bpg")
