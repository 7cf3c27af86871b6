"""End to end in a real browser: `sicodec serve` on 127.0.0.1 with a tiny progressive model, driven in headless
Chromium (Debian's chromium and chromium-driver, through Selenium with the driver path given, so nothing is
downloaded): upload a Kodak image, move the level slider, and see the bpp and the reconstruction change.

Chromium is installed by .ci/run where missing (apt-get, as root); this test is skipped, saying why, only where it
is not installed."""

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sicodec
from conftest import KODAK, SHARED

pytest.importorskip("fastapi", reason="the web page needs the web extra: pip install 'sicodec[web]'")
pytest.importorskip("uvicorn", reason="the web page needs the web extra: pip install 'sicodec[web]'")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver (as root; .ci/run installs them where apt can)"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1400")


def _require_browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install 'sicodec[test]'")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"Chromium is not available here ({path} of Debian's {package} is missing): {INSTALL}")


@pytest.fixture
def server(sic_weights_dir, tmp_path):
    """`python -m sicodec serve --port 0` with the tiny SIC installed as `sic`; yields its URL. Its temporary
    folder goes to tmp_path/tmp (TMPDIR), which must be empty again after it stopped."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "SICODEC_WEIGHTS": str(sic_weights_dir), "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    if (SHARED / "weights" / "lpips_alex.safetensors").is_file():
        env["SICODEC_METRIC_WEIGHTS"] = str(SHARED / "weights")
    proc = subprocess.Popen([sys.executable, "-m", "sicodec", "serve", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url, seen, deadline = None, [], time.monotonic() + 120
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            seen.append(line)
            if "serving on " in line:
                url = line.split("serving on ", 1)[1].split()[0]
    if url is None:
        proc.kill()
        pytest.fail(f"sicodec serve did not start: {''.join(seen)}")
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # like Ctrl-C: a graceful shutdown removes the temporary folder
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert list(temp.iterdir()) == [], "the server left files in its temporary folder"


@pytest.fixture
def browser(tmp_path, monkeypatch):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or a browser
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = Options()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _kodak_image() -> Path:
    path = KODAK / "kodim23.png"
    # The bundled sample is the same Kodak image at half size, for a checkout without shared/ beside it.
    return path if path.is_file() else Path(sicodec.__file__).parent / "samples" / "kodim23-384x256.png"


def test_upload_and_move_the_level_slider(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    d = browser
    wait = WebDriverWait(d, 90, poll_frequency=0.1)
    by_id = lambda name: d.find_element(By.ID, name)  # noqa: E731

    def shown(level):
        """The page is ready and the reconstruction element holds the image of `level`, fully loaded."""
        return d.execute_script(
            "const img = document.getElementById('recon');"
            "return document.body.dataset.state === 'ready' && img.dataset.level === arguments[0]"
            " && img.complete && img.naturalWidth > 0;", str(level))

    d.get(server)
    wait.until(lambda _: d.execute_script("return document.body.dataset.state") == "idle")
    assert Select(by_id("model")).first_selected_option.get_attribute("value") == "sic"
    assert {o.get_attribute("value") for o in Select(by_id("model")).options} >= {"sic", "hyperprior-q4"}
    modes = [o.get_attribute("value") for o in Select(by_id("mode")).options]
    assert modes == ["ancestral", "uniform", "gaussian", "mean"]
    assert Select(by_id("mode")).first_selected_option.get_attribute("value") == "ancestral"

    image = _kodak_image()
    by_id("file").send_keys(str(image))
    wait.until(lambda _: shown(4))  # all levels of the tiny SIC at first
    width = d.execute_script("return document.getElementById('recon').naturalWidth")
    assert width == (768 if image.parent == KODAK else 384)
    top_bpp, top_src = float(by_id("stat-bpp").text), by_id("recon").get_attribute("src")
    assert by_id("level-value").text == "4 / 4" and "dB" in by_id("stat-psnr").text

    # The split between original and reconstruction follows a drag (pointer events, as from a mouse).
    compare = by_id("compare")
    ActionChains(d).move_to_element_with_offset(compare, -compare.size["width"] // 4, 0).click_and_hold() \
        .move_by_offset(10, 0).release().perform()
    assert 20 <= int(by_id("handle").get_attribute("aria-valuenow")) <= 35

    slider = by_id("level")
    slider.send_keys(Keys.HOME)  # the keyboard moves the range input like a user would
    wait.until(lambda _: shown(1))
    low_bpp, low_src = float(by_id("stat-bpp").text), by_id("recon").get_attribute("src")
    assert by_id("level-value").text == "1 / 4"
    assert low_bpp < top_bpp and low_src != top_src
    assert "level=1" in by_id("download").get_attribute("href")

    slider.send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda _: shown(2))
    mid_bpp = float(by_id("stat-bpp").text)
    assert low_bpp < mid_bpp < top_bpp and by_id("recon").get_attribute("src") not in (low_src, top_src)

    # The hyperprior has one level: the slider is disabled and the file is re-coded with it.
    Select(by_id("model")).select_by_value("hyperprior-q4")
    wait.until(lambda _: shown(1) and by_id("level").get_attribute("disabled") is not None
               and float(by_id("stat-bpp").text) != mid_bpp)

    # A file that is not an image: a clear message in the page, not a broken image.
    bogus = tmp_path / "notes.png"
    bogus.write_text("these are notes, not an image")
    by_id("file").send_keys(str(bogus))
    wait.until(lambda _: by_id("error").is_displayed())
    assert "not an image" in by_id("error").text

    errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"
              and "status of 415" not in e["message"]]
    assert errors == [], errors
