"""A real browser on the app: upload a photo in each tab, press the button, see the outputs.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright, pointed at that
executable because Playwright's own browser download does not work everywhere. Skipped
when either is missing. Screenshots of each tab go to ``artifacts/`` (not committed),
for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from app_fakes import fake_models
from test_app_support import free_port, make_all_weights

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("COLORSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
PHOTO = REPO / "examples" / "chelsea_the_cat.jpg"  # 451x300, a real photo for representative screenshots
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from colorseg.app.demo import build_demo

    # COLORSEG_BROWSER_WEIGHTS=weights (with COLORSEG_DATA_DIR pointing at an empty folder)
    # takes README's screenshots with the trained nets; by default tiny random weights.
    trained = os.environ.get("COLORSEG_BROWSER_WEIGHTS")
    if trained:
        demo = build_demo(trained, device="cpu")
    else:
        demo = build_demo(models=fake_models(make_all_weights(tmp_path_factory.mktemp("weights"))))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page
        browser.close()


def _wait_for_images(page, selector: str, count: int) -> None:
    """Wait until at least ``count`` images inside ``selector`` are loaded and decoded by the browser."""
    page.wait_for_function(
        "([selector, count]) => [...document.querySelectorAll(selector + ' img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= count",
        arg=[selector, count],
    )


def test_colourize_tab(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Colourize").click()
    page.locator("#colour-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#colour-photo img").first.wait_for()
    page.get_by_role("button", name="Colourize", exact=True).click()
    page.get_by_text("Colourized 451×300 px").wait_for()
    _wait_for_images(page, "#colour-results", 5)  # grey, three nets, original
    page.screenshot(path=str(ARTIFACTS / "colourize_tab.png"), full_page=True)


def test_segment_tab(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Segment").click()
    page.locator("#segment-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#segment-photo img").first.wait_for()
    page.get_by_role("button", name="Segment", exact=True).click()
    page.get_by_text("Segmented 451×300 px").wait_for()
    for elem_id in ("overlay-ce", "overlay-iou", "disagreement"):
        _wait_for_images(page, f"#{elem_id}", 1)
    page.screenshot(path=str(ARTIFACTS / "segment_tab.png"), full_page=True)
    # The toggle hides one head's column without recomputing.
    page.get_by_label("Soft-IoU head only").check()
    page.locator("#overlay-ce").wait_for(state="hidden")
    assert page.locator("#overlay-iou").is_visible()


def test_model_tab(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Model").click()
    page.get_by_text("The hooked module's totals match").wait_for()
    page.screenshot(path=str(ARTIFACTS / "model_tab.png"), full_page=True)
