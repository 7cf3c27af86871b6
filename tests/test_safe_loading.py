"""Safe loading: weights only from safetensors, metadata checked against the tensors before anything
is allocated, files checked against the fingerprint in the .sic header, and no unpickling of
anything a stranger could send (see docs/robustness.md)."""

import ast
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import sicodec
from sicodec.cli import main
from sicodec.errors import ModelError, ModelMismatchError
from sicodec.models.weights import load_weights

PACKAGE = Path(sicodec.__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))


def _tensors(model):
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _meta(model, **changes):
    meta = {"sicodec.name": model.name, "sicodec.arch": model.arch, "sicodec.config": json.dumps(model.config),
            "sicodec.trained_steps": "0", "sicodec.status": "untrained"}
    meta.update(changes)
    return meta


def _lying_file(tmp_path, model, tensors=None, **meta):
    path = tmp_path / "lie.safetensors"
    save_file(_tensors(model) if tensors is None else tensors, str(path), metadata=_meta(model, **meta))
    return path


@pytest.mark.parametrize("meta, match", [
    ({"sicodec.arch": "jpeg"}, "unknown architecture 'jpeg'"),
    ({"sicodec.arch": "sic", "sicodec.config": json.dumps({"N": 16, "M": 24, "slices": 8})},
     "does not match the weights"),  # hyperprior tensors, SIC metadata
    ({"sicodec.config": json.dumps({"N": 16, "M": 32})}, "does not match the weights"),
    ({"sicodec.config": json.dumps({"N": 16, "M": 24, "K": 3})}, "invalid configuration"),
    ({"sicodec.config": json.dumps({"N": -16, "M": 24})}, "does not match the weights"),
    ({"sicodec.config": json.dumps({"N": "16", "M": 24})}, "invalid configuration"),
    ({"sicodec.config": "[16, 24]"}, "not a JSON object"),
    ({"sicodec.config": "{N: 16"}, "corrupt configuration"),
    ({"sicodec.arch": ""}, "unknown architecture"),
])
def test_metadata_that_lies_is_a_clear_model_error(tmp_path, tiny_model, meta, match):
    path = _lying_file(tmp_path, tiny_model, **meta)
    with pytest.raises(ModelError, match=match) as e:
        load_weights(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_huge_configuration_is_refused_before_the_model_is_allocated(tmp_path, tiny_model):
    """N = 100000 would be a 10**12-parameter model: refused from the metadata and tensor shapes,
    without building it (the fuzz harness's peak-RSS probe shows no growth)."""
    from sic_fuzz import peak_rss_bytes, reset_peak_rss, rss_bytes

    for config in ({"N": 100_000, "M": 24}, {"N": 16, "M": 24_000_000}):
        path = _lying_file(tmp_path, tiny_model, **{"sicodec.config": json.dumps(config)})
        reset_peak_rss()
        before = rss_bytes()
        with pytest.raises(ModelError, match="does not match the weights"):
            load_weights(path)
        assert peak_rss_bytes() - before < 64 << 20


def test_shapes_names_and_values_that_lie(tmp_path, tiny_model):
    tensors = _tensors(tiny_model)
    name = next(k for k, v in tensors.items() if v.ndim == 4)
    wrong_shape = dict(tensors, **{name: torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])})
    missing = {k: v for k, v in tensors.items() if k != name}
    extra = dict(tensors, extra=torch.zeros(3))
    nan = dict(tensors, **{name: torch.full(tensors[name].shape, float("nan"))})
    for bad, match in ((wrong_shape, "does not match"), (missing, "does not match"), (extra, "does not match"),
                       (nan, "non-finite")):
        with pytest.raises(ModelError, match=match):
            load_weights(_lying_file(tmp_path, tiny_model, tensors=bad))


def test_a_truncated_or_foreign_weights_file_is_a_model_error(tmp_path, tiny_weights):
    data = tiny_weights.read_bytes()
    for content in (data[: len(data) // 2], data[:7], b"", b"\x89PNG\r\n\x1a\n" + bytes(100), b"{}" * 10):
        path = tmp_path / "bad.safetensors"
        path.write_bytes(content)
        with pytest.raises(ModelError, match="not a readable safetensors weights file|no architecture"):
            load_weights(path)


class _Evil:
    """Unpickling this runs `open(marker, 'w')`: the classic malicious pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_files(tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"state_dict": _Evil(marker)})
    files = []
    for name in ("evil.pt", "evil.pth", "evil.safetensors", "evil", "evil.ckpt"):
        files.append(tmp_path / name)
        files[-1].write_bytes(payload)
    zipped = tmp_path / "evil-zip.pt"  # torch.save's zip format, with the same malicious object
    torch.save({"state_dict": _Evil(marker)}, zipped)
    files.append(zipped)
    # the payload is real: plain unpickling does run it
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()
    return marker, files


def test_a_malicious_pickle_given_as_model_is_never_executed(tmp_path, capsys, tiny_model):
    marker, files = _evil_files(tmp_path)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    sic = tmp_path / "a.sic"
    sic.write_bytes(sicodec.compress(image, model=tiny_model))
    for evil in files:
        with pytest.raises(ModelError, match="not a readable safetensors weights file"):
            sicodec.load_model(evil)
        for args in (["compress", image, tmp_path / "x.sic"], ["decompress", sic, tmp_path / "x.png"],
                     ["roundtrip", image], ["eval", evil, tmp_path, "--metrics", "psnr"]):
            if args[0] != "eval":
                args = [*args, "--model", evil]
            code = main([str(a) for a in args])
            err = capsys.readouterr().err
            assert code == 1 and f"{evil}: not a readable safetensors weights file" in err, err
            assert "Traceback" not in err and "internal error" not in err
        assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".sic", ".png")) == ["a.sic", "in.png"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_the_metric_weights_loader_refuses_a_malicious_pickle(tmp_path):
    """LPIPS/DISTS originals are read with torch's weights_only unpickler, which builds tensors only."""
    from sicodec.metrics import weights as metric_weights

    marker, files = _evil_files(tmp_path)
    for evil in files:
        with pytest.raises(ModelError, match="cannot read metric weights"):
            metric_weights.read_original(evil)
    assert not marker.exists()


def test_a_file_is_refused_by_other_weights_of_the_same_architecture(tmp_path, tiny_model):
    from conftest import make_tiny_model
    from sicodec.models.weights import save_weights

    data = sicodec.compress(Image.fromarray(np.zeros((32, 32, 3), np.uint8)), model=tiny_model)
    other = tmp_path / "other.safetensors"
    save_weights(make_tiny_model(seed=1), other, half=False)
    with pytest.raises(ModelMismatchError, match="other weights"):
        sicodec.decompress(data, model=other)
    same = tmp_path / "same.safetensors"
    save_weights(tiny_model, same, half=True)  # float16: other exact weights, so another fingerprint
    with pytest.raises(ModelMismatchError):
        sicodec.decompress(data, model=same)


# --- no unpickling in the package: the user's own training checkpoints are the one exception -----------
UNPICKLERS = {("torch", "load"), ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
              ("np", "load"), ("numpy", "load"), ("joblib", "load"), ("marshal", "load"), ("marshal", "loads"),
              ("shelve", "open"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "loads"),
              ("pandas", "read_pickle"), ("pd", "read_pickle"), ("torch.hub", "load_state_dict_from_url")}


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            yield node, (owner, node.func.attr)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill", "marshal", "joblib"):
            yield node, (node.module, "import")


def test_the_package_never_unpickles_outside_training_checkpoints():
    """Training checkpoints (sicodec/train/, torch.load with weights_only=False) are the user's own
    files, written by the training loop; everything else may open files from strangers (.sic files,
    --model weights, metric weights) and must not unpickle. torch.load(weights_only=True), torch's
    restricted loader for tensors, is allowed for the metric weights' original files (sicodec/metrics/) only."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("train/"):
            continue
        for node, (owner, attr) in _calls(ast.parse(path.read_text(), str(path))):
            if (owner, attr) == ("torch", "load"):
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if safe and rel.startswith("metrics/"):  # original metric weights files (opt-in)
                    continue
                found.append(f"{rel}:{node.lineno}: torch.load{'' if safe else ' without weights_only=True'}")
            elif (owner, attr) in UNPICKLERS or attr == "import" or (attr == "load" and "allow_pickle" in ast.unparse(node)):
                found.append(f"{rel}:{node.lineno}: {owner}.{attr}")
    assert not found, found


def test_training_checkpoints_are_the_documented_exception():
    loop = (PACKAGE / "train" / "loop.py").read_text()
    assert "weights_only=False" in loop and "never a downloaded file" in loop
    assert "training checkpoints" in (PACKAGE.parent / "docs" / "robustness.md").read_text().lower()


@pytest.mark.parametrize("transform", ["conv", "swin"])
def test_the_shape_check_leaves_nothing_in_the_temporary_folder(tmp_path, transform):
    """Building the model on the meta device must not import torch's compiler, which makes its cache
    folder in $TMPDIR (a server promises to leave its temporary folder empty)."""
    import os
    import subprocess

    from conftest import make_tiny_sic
    from sicodec.models.weights import save_weights

    path = tmp_path / "tiny.safetensors"
    save_weights(make_tiny_sic(transform=transform), path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR")} | {"TMPDIR": str(temp)}
    code = f"from sicodec.models.weights import load_weights; load_weights({str(path)!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert list(temp.iterdir()) == []
