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

from test_app_support import free_port, install_fake_segment_module, make_all_weights, save_photo

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("COLORSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import app

    weights = make_all_weights(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_fake_segment_module(monkeypatch)
        demo = app.build_demo(weights, device="cpu")
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


def _shown_images(page, selector: str) -> int:
    """Images inside ``selector`` that the browser has actually decoded."""
    return page.eval_on_selector_all(f"{selector} img", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")


def test_colourize_tab(page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    photo = save_photo(tmp_path / "photo.png", 96, 64)
    page.get_by_role("tab", name="Colourize").click()
    page.locator("#colour-photo input[type=file]").set_input_files(str(photo))
    page.locator("#colour-photo img").first.wait_for()
    page.get_by_role("button", name="Colourize", exact=True).click()
    page.get_by_text("Colourized 96×64 px").wait_for()
    page.wait_for_function("document.querySelectorAll('#colour-results img').length >= 5")
    assert _shown_images(page, "#colour-results") >= 5  # grey, three nets, original
    page.screenshot(path=str(ARTIFACTS / "colourize_tab.png"), full_page=True)


def test_segment_tab(page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    photo = save_photo(tmp_path / "photo.png", 96, 64)
    page.get_by_role("tab", name="Segment").click()
    page.locator("#segment-photo input[type=file]").set_input_files(str(photo))
    page.locator("#segment-photo img").first.wait_for()
    page.get_by_role("button", name="Segment", exact=True).click()
    page.get_by_text("Segmented 96×64 px").wait_for()
    for elem_id in ("overlay-ce", "overlay-iou", "disagreement"):
        page.wait_for_function(f"document.querySelector('#{elem_id} img') !== null")
        assert _shown_images(page, f"#{elem_id}") == 1
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
