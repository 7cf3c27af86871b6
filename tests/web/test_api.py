"""The web page's HTTP API through FastAPI's TestClient: both kinds of model, levels, downloads, opened .sic files,
the classic codecs at the same size, and the safety rules (limits, type checks, no file reachable by path, the
temporary folder)."""

import io
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sicodec
from sicodec.bitstream import parse

from conftest import SHARED

try:
    from fastapi.testclient import TestClient
except (ImportError, RuntimeError):  # Starlette's TestClient needs httpx2 (or httpx)
    pytest.skip("FastAPI's TestClient needs httpx2 or httpx: pip install 'sicodec[test]'", allow_module_level=True)

from sicodec.web import create_app  # noqa: E402

SAMPLE = "kodim23-384x256.png"
STATIC = Path(sicodec.__file__).parent / "web" / "static"


def png_bytes(width=128, height=96, mode="RGB", seed=0) -> bytes:
    """A smooth image with some texture (not noise), as PNG bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=2)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels, "RGB")
    if mode == "RGBA":
        im = im.convert("RGBA")
        im.putpixel((0, 0), (0, 0, 0, 10))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def client(installed_sic, tmp_path):
    with TestClient(create_app(temp_root=tmp_path)) as c:
        yield c


def upload(client, data, **params):
    return client.post("/api/jobs", content=data, params=params)


def error_of(response, status):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_page_is_served_locally_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "style.css", "favicon.svg"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
    # Nothing is loaded from elsewhere: no absolute URL in the page, its script or its style.
    for path in STATIC.iterdir():
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a download
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name


def test_no_request_reads_a_file_by_path(client):
    for url in ("/static/../app.py", "/static/index.html/../../jobs.py", "/static/%2e%2e%2fapp.py", "/static/app.py",
                "/api/jobs/..%2f..%2fetc/original.png", "/../../etc/passwd", "/static/%2fetc%2fpasswd"):
        r = client.get(url)
        assert r.status_code == 404, url
        assert "root:" not in r.text and "import" not in r.text
    error_of(client.post("/api/jobs", params={"sample": "../../../etc/passwd"}), 404)
    error_of(client.post("/api/jobs", params={"sample": "/etc/passwd"}), 404)
    job = upload(client, png_bytes(), model="hyperprior-q4").json()
    for key in ("..%2Foriginal", "..%2F..%2Fweb%2Fapp", "sic-level1-uniform-seed0", "original"):
        assert client.get(f"/api/jobs/{job['id']}/images/{key}.png").status_code == 404, key


def test_info_lists_both_kinds_of_model(client):
    info = client.get("/api/info").json()
    models = {m["name"]: m for m in info["models"]}
    assert models["sic"]["progressive"] and models["sic"]["levels"] == 4 and models["sic"]["status"] == "untrained"
    assert not models["hyperprior-q4"]["progressive"] and models["hyperprior-q4"]["levels"] == 1
    assert info["default_model"] == "sic"
    assert info["modes"] == ["ancestral", "uniform", "gaussian", "mean"] and info["default_mode"] == "ancestral"
    assert info["samples"] == [SAMPLE]
    assert info["limits"]["max_upload_bytes"] == 20 * 2**20
    assert {c["name"] for c in info["classic"]} == {"jpeg-420", "webp", "avif"}


def test_progressive_upload_levels_metrics_and_download(client, monkeypatch):
    if (SHARED / "weights" / "lpips_alex.safetensors").is_file():
        monkeypatch.setenv("SICODEC_METRIC_WEIGHTS", str(SHARED / "weights"))
    r = upload(client, png_bytes(), model="sic", seed=7, filename="../My photo.png")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "image" and job["progressive"] and job["levels"] == 4 and job["seed"] == 7
    assert (job["width"], job["height"]) == (128, 96) and job["name"] == "My_photo"
    sizes = [s["bytes"] for s in job["sizes"]]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4

    views = [client.get(f"/api/jobs/{job['id']}/view", params={"level": k}).json() for k in (1, 4)]
    for view, size in zip(views, (sizes[0], sizes[3])):
        assert view["bytes"] == size and view["bpp"] == pytest.approx(8 * size / (128 * 96))
        assert view["seed"] == 7 and view["mode"] == "ancestral" and view["psnr"] > 0
        assert (view["lpips"] is None) == (view["lpips_note"] is not None)
        png = client.get(view["image"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(png.content)).size == (128, 96)
    assert views[0]["image"] != views[1]["image"]
    other = client.get(f"/api/jobs/{job['id']}/view", params={"level": 1, "mode": "gaussian", "seed": 3}).json()
    assert other["image"] != views[0]["image"] and other["bytes"] == sizes[0]

    # The download is the real file at that level: its bytes are what the page reported, and it decodes.
    d = client.get(f"/api/jobs/{job['id']}/download", params={"level": 2})
    assert d.status_code == 200 and len(d.content) == sizes[1]
    assert 'filename="My_photo-sic-level2.sic"' in d.headers["content-disposition"]
    f = parse(d.content)
    assert len(f.sections) == 3 and f.header.seed == 7
    assert sicodec.decompress(d.content).size == (128, 96)
    # A different seed on the page is stored in the downloaded file (same size, same sections).
    reseeded = parse(client.get(f"/api/jobs/{job['id']}/download", params={"level": 2, "seed": 11}).content)
    assert reseeded.header.seed == 11 and reseeded.sections == f.sections


def test_lpips_without_weights_is_not_available_never_a_number(client, monkeypatch):
    from sicodec import metrics
    from sicodec.errors import ModelError

    def missing(*args, **kwargs):
        raise ModelError("no LPIPS weights found (put lpips_alex.safetensors in $SICODEC_METRIC_WEIGHTS)")

    monkeypatch.setattr(metrics, "lpips", missing)
    job = upload(client, png_bytes(), model="hyperprior-q4").json()
    view = client.get(f"/api/jobs/{job['id']}/view").json()
    assert view["lpips"] is None and "lpips_alex.safetensors" in view["lpips_note"]
    assert view["psnr"] > 0


def test_hyperprior_has_one_level(client):
    job = upload(client, png_bytes(), model="hyperprior-q4").json()
    assert not job["progressive"] and job["levels"] == 1 and job["sizes"][0]["level"] is None
    view = client.get(f"/api/jobs/{job['id']}/view").json()
    assert view["bytes"] == job["sizes"][0]["bytes"] and view["mode"] is None
    assert "not progressive" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"level": 2}), 400)
    assert "not progressive" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"mode": "gaussian"}), 400)
    d = client.get(f"/api/jobs/{job['id']}/download")
    assert d.status_code == 200 and sicodec.decompress(d.content).size == (128, 96)


def test_opened_sic_file_steps_through_its_levels(client):
    data = sicodec.compress(Image.open(io.BytesIO(png_bytes())), model="sic", seed=5)
    part = sicodec.truncate(data, 3)
    r = upload(client, part, filename="x.sic")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "sic" and job["model"] == "sic" and job["original"] is None
    assert job["levels"] == 3 and job["levels_total"] == 4 and job["seed"] == 5
    offsets = parse(part).section_offsets()
    for k in (1, 2, 3):
        view = client.get(f"/api/jobs/{job['id']}/view", params={"level": k}).json()
        assert view["bytes"] == offsets[k] and view["psnr"] is None and "no original" in view["psnr_note"]
        assert view["lpips"] is None
    assert "holds levels 1..3" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"level": 4}), 400)
    assert client.get(f"/api/jobs/{job['id']}/classic").json()["codecs"] == []
    error_of(client.get(f"/api/jobs/{job['id']}/original.png"), 404)


def test_sic_file_of_another_model_or_weights_is_refused(client, tiny_weights):
    other = sicodec.compress(Image.open(io.BytesIO(png_bytes())), model=tiny_weights)
    assert "does not have" in error_of(upload(client, other), 422)
    # Same registered name, other weights: the fingerprint check refuses it.
    from conftest import make_tiny_sic

    m = make_tiny_sic(seed=1)
    m.name = "sic"
    foreign = sicodec.compress(Image.open(io.BytesIO(png_bytes())), model=m)
    assert "other weights" in error_of(upload(client, foreign), 422)


def test_classic_codecs_at_the_same_size(client):
    job = upload(client, png_bytes(), model="sic").json()
    c = client.get(f"/api/jobs/{job['id']}/classic", params={"level": 3}).json()
    target = job["sizes"][2]["bytes"]
    assert c["bytes"] == target and [x["name"] for x in c["codecs"]] == ["jpeg-420", "webp", "avif"]
    for item in c["codecs"]:
        if "error" in item:
            continue
        assert item["bytes"] <= target or item["note"], item
        assert item["psnr"] > 0 and item["bpp"] == pytest.approx(8 * item["bytes"] / (128 * 96))
        assert client.get(item["image"]).status_code == 200
    # One quality higher would not fit (the search found the largest file not above the .sic size).
    from sicodec.bench.classic import encode
    from sicodec.image import prepare

    pixels = prepare(Image.open(io.BytesIO(png_bytes()))).pixels
    jpeg = c["codecs"][0]
    if jpeg["quality"] < 100 and not jpeg["note"]:
        assert len(encode("jpeg-420", pixels, jpeg["quality"] + 1)) > target


def test_sample_is_chosen_by_name(client):
    r = client.post("/api/jobs", params={"sample": SAMPLE, "model": "hyperprior-q4"})
    assert r.status_code == 201 and (r.json()["width"], r.json()["height"]) == (384, 256)
    assert "either" in error_of(client.post("/api/jobs", params={"sample": SAMPLE}, content=b"x"), 400)
    assert "no sample" in error_of(client.post("/api/jobs", params={"sample": "kodim23.png"}), 404)


def test_upload_size_limit(installed_sic, tmp_path):
    with TestClient(create_app(temp_root=tmp_path, max_upload_bytes=1000)) as c:
        assert "exceeds the limit of 1000 bytes" in error_of(upload(c, png_bytes()), 413)

        def chunks():  # no Content-Length: the limit is enforced while reading
            for _ in range(10):
                yield b"\0" * 500

        assert "exceeds the limit" in error_of(c.post("/api/jobs", content=chunks()), 413)


def test_pixel_limit(installed_sic, tmp_path):
    with TestClient(create_app(temp_root=tmp_path, max_pixels=100 * 100)) as c:
        message = error_of(upload(c, png_bytes(128, 96)), 413)
        assert "128x96" in message and "10000 pixels" in message
        sic = sicodec.compress(Image.open(io.BytesIO(png_bytes(128, 96))), model="sic")
        assert "exceeds" in error_of(upload(c, sic), 413)
        assert upload(c, png_bytes(96, 64), model="hyperprior-q4").status_code == 201


def test_type_checks_and_bad_requests(client):
    assert "not an image" in error_of(upload(client, b"hello, this is text"), 415)
    assert "not an image" in error_of(upload(client, b"%PDF-1.4\n" + b"\0" * 100), 415)
    assert "cannot read the image" in error_of(upload(client, png_bytes()[:300]), 415)
    assert "empty" in error_of(upload(client, b""), 400)
    assert "not a valid .sic file" in error_of(upload(client, b"\x89SIC\r\n\x1a\n\x01garbage"), 422)
    assert "transparency" in error_of(upload(client, png_bytes(mode="RGBA")), 422)
    assert "unknown model" in error_of(upload(client, png_bytes(), model="../../sic"), 400)
    assert "seed" in error_of(upload(client, png_bytes(), seed=-1), 400)
    job = upload(client, png_bytes(), model="sic").json()
    assert "invalid level" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"level": "two"}), 400)
    assert "level 9" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"level": 9}), 400)
    assert "fill mode" in error_of(client.get(f"/api/jobs/{job['id']}/view", params={"mode": "cubic"}), 400)
    assert "no such result" in error_of(client.get("/api/jobs/0123456789abcdef01234567/view"), 404)
    error_of(client.get("/api/nothing"), 404)


def test_notices_are_reported(client):
    im = Image.open(io.BytesIO(png_bytes())).convert("P")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    job = upload(client, buf.getvalue(), model="hyperprior-q4").json()
    assert any("palette" in n for n in job["notices"])


def test_temporary_files_stay_in_the_app_folder_and_are_removed(installed_sic, tmp_path):
    root = tmp_path / "tmp"
    root.mkdir()
    cwd_before = sorted(os.listdir("."))
    app = create_app(temp_root=root, max_jobs=2)
    with TestClient(app) as c:
        folder = app.state.workspace.dir
        assert folder.parent == root and folder.name.startswith("sicodec-web-")
        ids = []
        for seed in range(3):
            job = upload(c, png_bytes(seed=seed), model="sic").json()
            c.get(f"/api/jobs/{job['id']}/view", params={"level": 1})
            ids.append(job["id"])
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files and all(p.is_relative_to(folder) for p in files)
        # Only the last two jobs are kept; the oldest one's folder is gone.
        assert sorted(p.name for p in folder.iterdir()) == sorted(ids[1:])
        assert "expired" in error_of(c.get(f"/api/jobs/{ids[0]}/view"), 404)
    assert list(root.iterdir()) == []
    assert sorted(os.listdir(".")) == cwd_before


def test_serve_command_errors_are_one_line(installed_sic, capsys):
    from sicodec.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sicodec: error: cannot listen on 127.0.0.1") and err.count("\n") == 1
    assert main(["serve", "--model", "nonexistent"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_classic_search_stops_when_cancelled(client):
    from sicodec.web.jobs import WebError

    workspace = client.app.state.workspace
    job = workspace.job(upload(client, png_bytes(), model="sic").json()["id"])
    with pytest.raises(WebError, match="cancelled"):
        workspace.classic(job, 2, cancelled=lambda: True)
    assert not job.classic_sizes  # stopped before the first encode


def test_a_bug_is_still_one_line_of_json(installed_sic, tmp_path, monkeypatch):
    from sicodec.web.jobs import Workspace

    def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(Workspace, "info", broken)
    with TestClient(create_app(temp_root=tmp_path), raise_server_exceptions=False) as c:
        assert error_of(c.get("/api/info"), 500) == "internal error: RuntimeError: boom (please report this)"


def test_limits_must_be_positive(installed_sic):
    with pytest.raises(sicodec.SicodecError, match="must be positive"):
        create_app(max_upload_bytes=0)
