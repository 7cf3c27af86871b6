"""FID and KID: the statistics against closed forms and brute force, the patch protocol, the Inception network's
weight names against pytorch-fid's, and the clear error without weights. The network runs on random weights only:
no Inception weights are available offline, so no value here is compared with pytorch-fid's."""

import numpy as np
import pytest
import torch

from conftest import random_inception_tensors
from sicodec.errors import ModelError, SicodecError
from sicodec.metrics import fid as F
from sicodec.metrics.inception import FIDInception, _tf_avg_pool
from sicodec.metrics.weights import ENV_VAR, INCEPTION_FILE

ORIGINAL_FILE = "pt_inception-2015-12-05-6726825d.pth"
ORIGINAL_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + ORIGINAL_FILE


# ---- Frechet distance -----------------------------------------------------------------------------------------

def _random_cov(rng, d):
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d)


def test_frechet_distance_of_identical_statistics_is_zero(rng):
    mu, s = rng.normal(size=6), _random_cov(rng, 6)
    assert F.frechet_distance(mu, s, mu, s) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form(rng):
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert F.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert F.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9 + 1)


def test_frechet_distance_is_symmetric_non_negative_and_matches_scipy(rng):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    for d in (1, 3, 8):
        mu1, mu2, s1, s2 = rng.normal(size=d), rng.normal(size=d), _random_cov(rng, d), _random_cov(rng, d)
        ab, ba = F.frechet_distance(mu1, s1, mu2, s2), F.frechet_distance(mu2, s2, mu1, s1)
        assert ab == pytest.approx(ba, rel=1e-9) and ab > 0
        root = scipy_linalg.sqrtm(s1 @ s2).real  # pytorch-fid's formula
        ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root)
        assert ab == pytest.approx(ref, rel=1e-7)


def test_fid_from_features_low_rank_and_full_paths_agree(rng):
    """Fewer samples than dimensions (the patch case) and more, against the covariance formula."""
    for n1, n2, d in ((5, 7, 12), (40, 30, 4)):
        a, b = rng.normal(size=(n1, d)), rng.normal(1.0, 2.0, size=(n2, d))
        expected = F.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        assert F.fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)
    a = rng.normal(size=(6, 10))
    assert F.fid_from_features(a, a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(SicodecError, match="at least 2"):
        F.fid_from_features(a[:1], a)
    with pytest.raises(SicodecError, match="dimension"):
        F.fid_from_features(a, a[:, :5])


# ---- KID ------------------------------------------------------------------------------------------------------

def _brute_force_mmd2(x, y):
    d, m = x.shape[1], len(x)
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_on_the_whole_set_is_the_unbiased_mmd(rng):
    x, y = rng.normal(size=(7, 4)), rng.normal(0.5, 1.0, size=(7, 4))
    mean, std = F.kid(x, y, subsets=3, subset_size=50)  # clipped to 7: every subset is the whole set
    assert mean == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0, abs=1e-12)


def test_kid_separates_and_is_deterministic(rng):
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same, _ = F.kid(a, b, subsets=20, subset_size=100)
    shifted, _ = F.kid(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 and shifted > 0.5
    # a set against itself: k(x, x) enters the cross term only, so the estimate is below 0 by O(1 / m)
    itself, _ = F.kid(a, a, subsets=1, subset_size=300)
    assert -0.1 < itself < 0
    assert F.kid(a, b + 1.0, subsets=20, subset_size=100, seed=3) == F.kid(a, b + 1.0, subsets=20, subset_size=100,
                                                                            seed=3)
    assert F.kid(a, b, subsets=20, subset_size=100, seed=1) != F.kid(a, b, subsets=20, subset_size=100, seed=2)
    with pytest.raises(SicodecError, match="at least 2"):
        F.kid(a[:1], b)


def test_scores_need_two_patches_per_side(rng):
    f = rng.normal(size=(3, 8))
    assert set(F.scores(f, f + 0.1)) == {"fid", "kid", "kid_std"}
    with pytest.raises(SicodecError, match="at least 2 patches.*got 1 and 3"):
        F.scores(f[:1], f)


# ---- patches --------------------------------------------------------------------------------------------------

def test_patches_of_a_kodak_sized_image():
    h, w = 512, 768
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    corners = F.patch_corners(h, w)
    assert corners == [(0, 0), (0, 256), (0, 512), (256, 0), (256, 256), (256, 512), (128, 128), (128, 384)]
    p = F.patches(img)
    assert p.shape == (8, 256, 256, 3) and p.dtype == np.uint8
    for patch, (y, x) in zip(p, corners):
        assert np.array_equal(patch, img[y:y + 256, x:x + 256])
    assert F.count_patches(512, 768) == 8 and 24 * F.count_patches(512, 768) == 192
    assert F.count_patches(768, 512) == 8  # portrait Kodak images too


def test_patches_of_small_and_odd_sizes():
    assert F.patch_corners(300, 200) == [] and F.patches(np.zeros((300, 200, 3), np.uint8)).shape == (0, 256, 256, 3)
    assert F.patch_corners(200, 300) == []
    assert F.patch_corners(300, 300) == [(0, 0)]  # the shifted image is 172x172: nothing
    assert F.patch_corners(383, 640) == [(0, 0), (0, 256)]
    assert F.patch_corners(384, 640) == [(0, 0), (0, 256), (128, 128), (128, 384)]  # shifted: 256x512
    assert F.patch_corners(8, 8, size=4) == [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]


def test_patch_features_feed_the_network_patches_in_0_1():
    img = np.random.default_rng(1).integers(0, 256, (384, 512, 3), dtype=np.uint8)
    seen = []

    def net(x):
        seen.append(x.clone())
        return x.mean((2, 3)).repeat(1, 700)[:, :2048]

    out = F.patch_features(img, model=net)
    assert out.shape == (F.count_patches(384, 512), 2048) == (3, 2048) and out.dtype == np.float64
    x = torch.cat(seen)
    assert x.shape == (3, 3, 256, 256)
    expected = torch.from_numpy(img[128:384, 128:384]).permute(2, 0, 1).float() / 255
    assert torch.equal(x[2], expected)
    assert F.patch_features(np.zeros((100, 100, 3), np.uint8), model=net).shape == (0, 2048)


# ---- the network and its weights ------------------------------------------------------------------------------

def original_table() -> dict[str, tuple[int, ...]]:
    """pytorch-fid's state dict (torchvision's Inception3, 1008 classes, no AuxLogits), written out from
    torchvision's layer list: every BasicConv2d is `<name>.conv.weight` and `<name>.bn.{weight,bias,running_mean,
    running_var}`."""
    layers = [("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3), ("Conv2d_2b_3x3", 32, 64, 3),
              ("Conv2d_3b_1x1", 64, 80, 1), ("Conv2d_4a_3x3", 80, 192, 3)]
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        layers += [(f"{name}.branch1x1", cin, 64, 1), (f"{name}.branch5x5_1", cin, 48, 1),
                   (f"{name}.branch5x5_2", 48, 64, 5), (f"{name}.branch3x3dbl_1", cin, 64, 1),
                   (f"{name}.branch3x3dbl_2", 64, 96, 3), (f"{name}.branch3x3dbl_3", 96, 96, 3),
                   (f"{name}.branch_pool", cin, pool, 1)]
    layers += [("Mixed_6a.branch3x3", 288, 384, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1),
               ("Mixed_6a.branch3x3dbl_2", 64, 96, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3)]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        layers += [(f"{name}.branch1x1", 768, 192, 1),
                   (f"{name}.branch7x7_1", 768, c7, 1), (f"{name}.branch7x7_2", c7, c7, (1, 7)),
                   (f"{name}.branch7x7_3", c7, 192, (7, 1)),
                   (f"{name}.branch7x7dbl_1", 768, c7, 1), (f"{name}.branch7x7dbl_2", c7, c7, (7, 1)),
                   (f"{name}.branch7x7dbl_3", c7, c7, (1, 7)), (f"{name}.branch7x7dbl_4", c7, c7, (7, 1)),
                   (f"{name}.branch7x7dbl_5", c7, 192, (1, 7)), (f"{name}.branch_pool", 768, 192, 1)]
    layers += [("Mixed_7a.branch3x3_1", 768, 192, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3),
               ("Mixed_7a.branch7x7x3_1", 768, 192, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7)),
               ("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1)), ("Mixed_7a.branch7x7x3_4", 192, 192, 3)]
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        layers += [(f"{name}.branch1x1", cin, 320, 1), (f"{name}.branch3x3_1", cin, 384, 1),
                   (f"{name}.branch3x3_2a", 384, 384, (1, 3)), (f"{name}.branch3x3_2b", 384, 384, (3, 1)),
                   (f"{name}.branch3x3dbl_1", cin, 448, 1), (f"{name}.branch3x3dbl_2", 448, 384, 3),
                   (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3)), (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1)),
                   (f"{name}.branch_pool", cin, 192, 1)]
    table = {}
    for name, cin, cout, k in layers:
        kh, kw = (k, k) if isinstance(k, int) else k
        table[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            table[f"{name}.bn.{p}"] = (cout,)
    table["fc.weight"], table["fc.bias"] = (1008, 2048), (1008,)
    return table


def test_weight_names_and_shapes_are_pytorch_fids():
    table = original_table()
    # torchvision's inception_v3 has 27,161,264 parameters; without AuxLogits (3,326,696) and with 1008 classes
    # instead of 1000 (+8 * 2049) that is pytorch-fid's network
    params = sum(int(np.prod(s)) for k, s in table.items() if not k.endswith(("running_mean", "running_var")))
    assert params == 27_161_264 - 3_326_696 + 8 * 2049
    ours = {k: tuple(v.shape) for k, v in FIDInception().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == {k: s for k, s in table.items() if not k.startswith("fc.")}


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path


def _random_original(with_counters: bool = True) -> dict:
    state = {k: torch.rand(s) for k, s in original_table().items()}
    if with_counters:
        state.update({k.replace("running_mean", "num_batches_tracked"): torch.tensor(0)
                      for k in list(state) if k.endswith("running_mean")})
    return state


def test_the_original_file_and_its_safetensors_conversion_load(no_weights):
    from safetensors.torch import save_file

    hub = no_weights / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    state = _random_original(with_counters=True)
    torch.save(state, hub / ORIGINAL_FILE)
    net = FIDInception.from_weights()
    assert torch.equal(net.Mixed_7c.branch_pool.bn.running_var, state["Mixed_7c.branch_pool.bn.running_var"])
    assert not net.training and not any(p.requires_grad for p in net.parameters())

    state = _random_original(with_counters=False)  # old files lack BatchNorm's counters
    save_file(state, str(no_weights / "env" / INCEPTION_FILE))
    net = FIDInception.from_weights()
    assert torch.equal(net.Conv2d_1a_3x3.conv.weight, state["Conv2d_1a_3x3.conv.weight"])


def test_unfit_weights_are_refused(no_weights):
    from safetensors.torch import save_file

    state = _random_original()
    del state["Mixed_7c.branch_pool.bn.bias"]
    state["Mixed_6e.branch1x1.conv.weight"] = torch.rand(192, 768, 3, 3)
    state["AuxLogits.fc.weight"] = torch.rand(1008, 768)
    save_file(state, str(no_weights / "env" / INCEPTION_FILE))
    with pytest.raises(ModelError, match="do not fit FIDInception.*missing: Mixed_7c.branch_pool.bn.bias.*"
                                         "unexpected: AuxLogits.fc.weight.*wrong shape: Mixed_6e.branch1x1"):
        FIDInception.from_weights()


def test_missing_weights_give_one_clear_line_everywhere(no_weights):
    img = np.zeros((256, 256, 3), np.uint8)
    for call in (F.load_inception, lambda: F.fid_kid([img, img], [img, img]), F.FIDKID, FIDInception.from_weights,
                 lambda: F.patch_features(img)):
        with pytest.raises(ModelError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and INCEPTION_FILE in msg and ORIGINAL_FILE in msg and ORIGINAL_URL in msg
        assert ENV_VAR in msg and "SICODEC_ALLOW_DOWNLOAD=1" in msg


def test_download_only_when_allowed_fetches_the_original(no_weights, monkeypatch):
    fetched = []

    def fake(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        torch.save(_random_original(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    with pytest.raises(ModelError):
        FIDInception.from_weights()
    assert fetched == []
    monkeypatch.setenv("SICODEC_ALLOW_DOWNLOAD", "1")
    FIDInception.from_weights()
    assert fetched == [ORIGINAL_URL]
    assert (no_weights / "torch" / "hub" / "checkpoints" / ORIGINAL_FILE).is_file()


def test_network_gives_2048_features_and_keeps_tensorflows_pooling():
    torch.manual_seed(0)
    net = FIDInception().eval()
    net.load_state_dict(random_inception_tensors(), strict=False)
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 299, 299))
        small = net(torch.rand(1, 3, 64, 80))  # resized to 299x299 first
    assert out.shape == (2, 2048) and small.shape == (1, 2048)
    assert torch.isfinite(out).all() and (out[0] - out[1]).abs().max() > 0
    assert torch.equal(_tf_avg_pool(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))  # padding left out
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool
    with pytest.raises(SicodecError, match="Bx3xHxW"):
        net(torch.rand(3, 299, 299))


def test_fid_kid_over_images_with_random_weights(random_inception, make_image):
    """The whole path (weights lookup, patches, features, statistics) runs; identical sets give 0."""
    refs = [make_image(384, 384, seed=s) for s in (1, 2)]  # 1 + 1 patches each
    noisy = [np.clip(r.astype(int) + np.random.default_rng(0).integers(-60, 60, r.shape), 0, 255).astype(np.uint8)
             for r in refs]
    same = F.fid_kid(refs, refs)
    # the unbiased KID of a set against itself is below 0: k(x, x) counts in the cross term only
    assert same["patches"] == 4 and same["fid"] == pytest.approx(0, abs=1e-6) and same["kid"] < 0
    acc = F.FIDKID()
    for r, n in zip(refs, noisy):
        acc.add(r, n)
    worse = acc.compute()
    assert np.isfinite([worse["fid"], worse["kid"], worse["kid_std"]]).all() and worse["fid"] > 0
    with pytest.raises(SicodecError, match="2 reference images but 1"):
        F.fid_kid(refs, noisy[:1])
