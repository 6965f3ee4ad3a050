"""A real browser on the app: every tab and panel appears and reacts to input.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright, pointed at that
executable because Playwright's own browser download does not work everywhere. Skipped
when either is missing. Screenshots go to ``artifacts/`` (not committed) for a person to look
at, or to ``$COLORSEG_SCREENSHOT_DIR``: README's come from

    COLORSEG_BROWSER_WEIGHTS=weights COLORSEG_DATA=/nonexistent COLORSEG_SCREENSHOT_DIR=docs/screenshots \
        python -m pytest -q tests/app/test_browser.py

(trained nets; the stand-in segmenter only while weights/ has no usable segmentation model).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_fakes import FakeSegmenter, fake_models
from app_support import free_port, make_all_weights
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("COLORSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake camera (a moving test pattern) that the page may use without asking: the webcam source.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COLORSEG_SCREENSHOT_DIR") or REPO / "artifacts")
PHOTO = REPO / "examples" / "chelsea_the_cat.jpg"  # 451x300, a real photo for representative screenshots
ANIMAL = REPO / "examples" / "cow.webp"  # 1024x768, what "Any object" is for
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")


def _replays(folder: Path) -> Path:
    """A small replay in ``folder``: the example horse, grey at epoch 1, its colours coming in by epoch 3
    (synthetic frames: the panel, not a training run, is under test)."""
    from PIL import Image

    from colorseg.replay import ReplayRecorder

    with Image.open(REPO / "examples" / "horse.webp") as image:
        rgb = np.asarray(image.convert("RGB").resize((32, 32)))
    grey = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    recorder = ReplayRecorder("colour", ["horse"])
    for epoch in (1, 2, 3):
        share = (epoch - 1) / 2
        recorder.record(epoch, "prediction", (grey * (1 - share) + rgb * share).astype(np.uint8)[None])
        recorder.record_losses(epoch, "validation", {"loss": 3.2 - epoch * 0.4})
    recorder.save(folder, "replay_colour_UNet")
    return folder


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from colorseg.app import replay_tab
    from colorseg.app.demo import build_demo
    from colorseg.app.models import load_models

    trained = os.environ.get("COLORSEG_BROWSER_WEIGHTS")
    models = load_models(trained, "cpu") if trained else fake_models(make_all_weights(tmp_path_factory.mktemp("w")))
    if models.segmenter is None:  # trained colour nets, no usable segmentation model yet
        models.segmenter, models.segment_problem = FakeSegmenter(), None
    # A replay made from an example photo: real replays show the training data's own images,
    # which stay out of the repository and its screenshots.
    reports = _replays(tmp_path_factory.mktemp("reports"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(replay_tab, "report_dirs", lambda weights_dir: [reports])
        demo = build_demo(models=models)
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
        # Clipboard and camera: the photo inputs' paste and webcam sources.
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write", "camera"]
        )
        page = context.new_page()
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


def test_colourize_tab_and_pixel_inspector(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Colourize").click()
    page.locator("#colour-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#colour-photo img").first.wait_for()
    page.get_by_role("button", name="Colourize", exact=True).click()
    page.get_by_text("Colourized 451×300 px").wait_for()
    _wait_for_images(page, "#colour-results", 5)  # grey, three nets, original
    page.screenshot(path=str(ARTIFACTS / "colourize_tab.png"), full_page=True)
    # Click a pixel of the result: one bar chart per net, colours and confidence.
    _wait_for_images(page, "#inspect-picture", 1)
    picture = page.locator("#inspect-picture img").first
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
    page.locator("#inspect-summary").get_by_text("Pixel (").wait_for()
    _wait_for_images(page, "#inspect-charts", 1)
    before = page.locator("#inspect-summary").inner_html()
    page.get_by_role("button", name="Settings ▼").click()
    page.get_by_label("argmax", exact=True).check()  # the decoding moves the bold to the argmax colour
    page.wait_for_function("b => document.querySelector('#inspect-summary').innerHTML !== b", arg=before)
    page.locator("#inspect-summary").scroll_into_view_if_needed()
    page.locator("#inspect-summary").screenshot(path=str(ARTIFACTS / "pixel_inspector_summary.png"))
    page.screenshot(path=str(ARTIFACTS / "pixel_inspector.png"), full_page=True)


def test_segment_tab(page, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Segment").click()
    page.locator("#segment-photo input[type=file]").set_input_files(str(ANIMAL))
    page.locator("#segment-photo img").first.wait_for()
    page.get_by_role("button", name="Segment", exact=True).click()
    with Image.open(ANIMAL) as animal:
        page.get_by_text("Segmented {}×{} px".format(*animal.size)).wait_for()
    for elem_id in ("overlay-ce", "overlay-iou", "disagreement", "cutout-ce", "cutout-iou"):
        _wait_for_images(page, f"#{elem_id}", 1)
    assert not page.locator("#iou-curve").is_visible(), "no curve without a ground truth"
    page.screenshot(path=str(ARTIFACTS / "segment_tab.png"), full_page=True)
    # What to find, and a ground truth: the TP/FP/FN overlays and the threshold curves appear.
    # A validation horse with its own mask when local data has one, else the photo's bright parts.
    from colorseg.app.examples import segmentation_validation

    pairs = segmentation_validation(limit=1)
    if pairs:
        photo, mask = pairs[0]
    else:
        photo, mask = PHOTO, tmp_path / "mask.png"
        with Image.open(PHOTO) as picture:
            Image.fromarray((np.asarray(picture.convert("L")) > 110).astype(np.uint8) * 255).save(mask)
    page.locator("#segment-photo button[aria-label='Remove Image']").first.click()
    page.locator("#segment-photo input[type=file]").set_input_files(str(photo))
    page.locator("#segment-photo img").first.wait_for()
    page.locator("#segment-mask input[type=file]").set_input_files(str(mask))
    page.locator("#segment-mask img").first.wait_for()
    page.locator("#segment-task").get_by_label("Horses").check()
    page.get_by_role("button", name="Segment", exact=True).click()
    page.get_by_text("looking for Horses").wait_for()
    for elem_id in ("iou-curve", "errors-ce", "errors-iou"):
        _wait_for_images(page, f"#{elem_id}", 1)
    page.screenshot(path=str(ARTIFACTS / "segment_extras.png"), full_page=True)
    # The toggle hides one head's column without recomputing.
    page.get_by_label("Soft-IoU head only").check()
    page.locator("#overlay-ce").wait_for(state="hidden")
    assert page.locator("#overlay-iou").is_visible() and page.locator("#errors-iou").is_visible()
    page.get_by_label("Both heads").check()


def test_inside_the_nets_tab(page):
    page.get_by_role("tab", name="Inside the nets").click()
    _wait_for_images(page, "#probe-transposed", 4)  # the probe runs on page load
    _wait_for_images(page, "#probe-upsampled", 4)
    page.locator("#inside-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#inside-photo img").first.wait_for()
    page.get_by_role("button", name="Look inside").click()
    page.get_by_text("UNet on your photo").wait_for()
    _wait_for_images(page, "#inside-layers", 9)
    assert page.locator("#inside-layers").get_by_text("← skip from down1.1").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "inside_the_nets_tab.png"), full_page=True)
    page.locator("#inside-net").get_by_label("ConvTransposeNet").check()  # another net: explored at once
    page.get_by_text("ConvTransposeNet on your photo").wait_for()


def test_training_replay_tab(page):
    page.get_by_role("tab", name="Training replay").click()
    caption = page.locator("#replay-caption")
    caption.get_by_text(re.compile(r"Epoch \d+")).wait_for()  # opens on the last epoch recorded
    _wait_for_images(page, "#replay-frame", 1)
    number = page.locator("#replay-epoch input[type=number]")
    number.fill("2")
    number.press("Enter")
    caption.get_by_text(re.compile(r"Epoch 2\b")).wait_for()
    page.screenshot(path=str(ARTIFACTS / "training_replay_tab.png"), full_page=True)
    page.get_by_role("button", name="▶ Play").click()
    caption.get_by_text(re.compile(r"Epoch 3\b")).wait_for()  # playing moves on


def test_model_tab(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Model").click()
    page.get_by_text("The hooked module's totals match").wait_for()
    page.screenshot(path=str(ARTIFACTS / "model_tab.png"), full_page=True)


def test_upload_paste_and_webcam_reach_the_app_as_uploaded_files(page):
    """The browser sends every picture as a file upload, whatever its source: the server refuses
    data: URLs and caps other request bodies (colorseg.app.server), and all three still work."""
    from colorseg.app.server import MAX_BODY_BYTES

    posted = []
    page.on(
        "request",
        lambda request: (
            request.method == "POST"
            and posted.append(
                (
                    request.url.split("?")[0].rsplit("/", 1)[-1],
                    request.headers.get("content-type", ""),
                    len(request.post_data_buffer or b""),
                )
            )
        ),
    )
    page.get_by_role("tab", name="Colourize").click()
    photo = page.locator("#colour-photo")
    remove = photo.locator("button[aria-label='Remove Image']")

    def colourize(size: str | None, previous: str) -> None:
        """Colourize what the input holds; wait for the notes of a result of ``size`` (any size but
        ``previous`` when None), not the progress or the last result."""
        photo.locator("img").first.wait_for()
        page.get_by_role("button", name="Colourize", exact=True).click()
        page.wait_for_function(
            "([size, previous]) => { const text = document.querySelector('#colour-notes').innerText;"
            " return size ? text.startsWith(`Colourized ${size} px`) :"
            " text.startsWith('Colourized ') && !text.startsWith(`Colourized ${previous} px`); }",
            arg=[size, previous],
        )
        remove.first.click()

    if remove.count():
        remove.first.click()
    sizes = {}
    for path in (ANIMAL, PHOTO):
        with Image.open(path) as picture:
            sizes[path] = "{}×{}".format(*picture.size)
    photo.locator("input[type=file]").set_input_files(str(ANIMAL))  # upload (the last result was PHOTO's)
    colourize(sizes[ANIMAL], "")
    with Image.open(PHOTO) as picture:  # paste: a picture on the clipboard, as a PNG
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="PNG")
    page.evaluate(
        """async (b64) => {
        const blob = await (await fetch('data:image/png;base64,' + b64)).blob();
        await navigator.clipboard.write([new ClipboardItem({'image/png': blob})]);
    }""",
        base64.b64encode(buffer.getvalue()).decode(),
    )
    photo.locator("button[aria-label='Paste from clipboard']").click()
    colourize(sizes[PHOTO], "")
    photo.locator("button[aria-label='Capture from camera']").click()  # webcam: Chromium's fake camera
    photo.get_by_text("Click to Access Webcam").click()
    # Capture only once the camera delivers frames: before that the picture is empty and nothing is sent.
    page.wait_for_function("() => (document.querySelector('#colour-photo video') || {}).videoWidth > 0")
    photo.locator("button[aria-label='capture photo']").click()
    colourize(None, sizes[PHOTO])
    uploads = [entry for entry in posted if entry[0] == "upload"]
    assert len(uploads) == 3 and all(kind.startswith("multipart/form-data") for _, kind, _ in uploads)
    assert all(size < MAX_BODY_BYTES for name, _, size in posted if name != "upload"), posted
