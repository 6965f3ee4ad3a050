"""A real browser on the app as a fresh clone serves it: every tab, at a desktop's and a phone's width,
shows a learner what it should (scores, palette, plots with captions, replays) and fits the screen.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright, pointed at that
executable because Playwright's own browser download does not work everywhere. Skipped
when either is missing. Screenshots go to ``artifacts/`` (not committed) for a person to look
at, or to ``$COLORSEG_SCREENSHOT_DIR``: README's come from

    COLORSEG_DATA=/nonexistent COLORSEG_SCREENSHOT_DIR=docs/screenshots python -m pytest -q tests/app/test_browser.py

(``COLORSEG_DATA`` pointing nowhere keeps local data-set photos out of the example galleries;
``COLORSEG_BROWSER_WEIGHTS`` chooses another weights folder than weights/).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

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
DESKTOP, PHONE = 1400, 400  # window widths (px) every tab is walked at

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The app as a fresh clone serves it: the committed weights and the replays shipped in reports/
    (tiny stand-in weights, and then no replays, only where the committed ones do not load)."""
    from colorseg.app.demo import build_demo
    from colorseg.app.models import load_models

    models = load_models(os.environ.get("COLORSEG_BROWSER_WEIGHTS") or REPO / "weights", "cpu")
    if models.colour_problem:
        models = fake_models(make_all_weights(tmp_path_factory.mktemp("w")))
    if models.segmenter is None:
        models.segmenter, models.segment_problem = FakeSegmenter(), None
    demo = build_demo(models=models)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def _open(url: str, width: int):
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    # Clipboard and camera: the photo inputs' paste and webcam sources.
    context = browser.new_context(
        viewport={"width": width, "height": 1000}, permissions=["clipboard-read", "clipboard-write", "camera"]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return playwright, browser, page


@pytest.fixture(scope="module", params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def page(url, request):
    playwright, browser, page = _open(url, request.param)
    page.width = request.param
    yield page
    browser.close()
    playwright.stop()


def _wait_for_images(page, selector: str, count: int) -> None:
    """Wait until at least ``count`` images inside ``selector`` are loaded and decoded by the browser
    (scrolled to first: a gallery's pictures load lazily, only near the screen)."""
    page.locator(selector).first.scroll_into_view_if_needed()
    page.wait_for_function(
        "([selector, count]) => [...document.querySelectorAll(selector + ' img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= count",
        arg=[selector, count],
    )


def _tab(page, name: str) -> None:
    """Open a tab; on a narrow screen gradio moves the tabs that do not fit into a "More tabs" menu."""
    page.get_by_role("tab").first.wait_for()  # the page has rendered its tab bar
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.is_visible():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown").get_by_role("button", name=name, exact=True).click()


def _fits_the_screen(page) -> None:
    """No horizontal page scroll; nothing drawn beyond the window's right edge, except inside a box
    that scrolls sideways itself (the wide layer tables); the score tables fit whole, no scrolling."""
    overflow = page.evaluate(
        """() => {
        const width = window.innerWidth;
        const page = document.documentElement.scrollWidth;
        // The right edge a learner can reach: boxes that scroll or clip cut their content to their own.
        const reach = (e) => {
            let right = e.getBoundingClientRect().right;
            for (let a = e.parentElement; a; a = a.parentElement) {
                const clips = getComputedStyle(a).overflowX !== 'visible';
                if (clips) right = Math.min(right, a.getBoundingClientRect().right);
            }
            return right;
        };
        const boxRight = (e) => e.closest('[id]').getBoundingClientRect().right;
        const shown = (e) => e.offsetParent !== null && !e.closest('.visually-hidden');
        const cut = [...document.querySelectorAll('img, table, .grid-container, button, canvas')]
            .filter(e => shown(e) && reach(e) > width + 1)
            .map(e => (e.closest('[id]') || e).id || e.tagName);
        const scrolled = [...document.querySelectorAll('#colour-scores table, #segment-scores table')]
            .filter(e => shown(e) && boxRight(e) < e.getBoundingClientRect().right - 1)
            .map(e => e.closest('[id]').id);
        return {page, width, cut, scrolled};
    }"""
    )
    assert overflow["page"] <= overflow["width"] + 1, overflow
    assert not overflow["cut"] and not overflow["scrolled"], overflow


def _shot(page, name: str) -> None:
    """A full-page screenshot once every picture has loaded: scrolled through first, since gradio's
    pictures load lazily, only near the screen, and a full-page shot does not scroll."""
    page.evaluate(
        """async () => {
        for (let y = 0; y < document.body.scrollHeight; y += 400) {
            window.scrollTo(0, y);
            await new Promise(done => setTimeout(done, 50));
        }
        window.scrollTo(0, 0);
    }"""
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].filter(i => i.offsetParent !== null).every(i => i.complete)"
    )
    # Every event done: gradio hides a component's status tracker once its result has arrived.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
        ".every(e => e.offsetParent === null || e.classList.contains('hide'))"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = "phone" if page.width == PHONE else "desktop"
    page.screenshot(path=str(ARTIFACTS / f"{name}_{width}.png"), full_page=True)


def test_colourize_tab(page):
    _tab(page, "Colourize")
    page.locator("#colour-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#colour-photo img").first.wait_for()
    page.get_by_role("button", name="Colourize", exact=True).click()
    page.get_by_text("Colourized 451×300 px").wait_for()
    _wait_for_images(page, "#colour-results", 5)  # grey, three nets, original
    # Why UNet wins: each net scored against the photo's own quantised colours, the palette, the target.
    page.locator("#colour-scores").get_by_text("UNet").first.wait_for()
    assert page.locator("#colour-score-notes").inner_text().strip()
    for picture in ("#colour-palette", "#colour-target"):
        _wait_for_images(page, picture, 1)
    # The before/after slider shows a result; it takes no upload.
    assert page.locator("#colour-slider").get_by_text("Drop Image Here").count() == 0
    # Another decoding renders again, without a button.
    assert "annealed mean decoding" in page.locator("#colour-notes").inner_text()
    page.locator("#colour-settings > button").first.click()
    page.get_by_label("argmax", exact=True).check()
    page.locator("#colour-notes").get_by_text("argmax decoding").wait_for()
    # Unticking every net: a plain sentence, no error.
    nets = page.locator("#colour-nets")
    for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet"):
        nets.get_by_label(name).uncheck()
    page.locator("#colour-notes").get_by_text("No network is ticked").wait_for()
    assert page.locator(".toast-body.error, .toast-wrap .error").count() == 0
    for name in ("PoolUpsampleNet", "ConvTransposeNet", "UNet"):
        nets.get_by_label(name).check()
    _wait_for_images(page, "#colour-results", 5)
    _fits_the_screen(page)
    _shot(page, "colourize_tab")


def test_pixel_inspector(page):
    _tab(page, "Colourize")
    _wait_for_images(page, "#inspect-picture", 1)
    picture = page.locator("#inspect-picture img").first
    picture.scroll_into_view_if_needed()
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
    page.locator("#inspect-summary").get_by_text("Pixel (").wait_for()
    _wait_for_images(page, "#inspect-charts", 1)
    _fits_the_screen(page)
    if page.width == DESKTOP:
        page.locator("#inspect-summary").screenshot(path=str(ARTIFACTS / "pixel_inspector_summary.png"))
    _shot(page, "pixel_inspector")


def test_a_cifar_sized_example(page):
    _tab(page, "Colourize")
    page.get_by_text("CIFAR-sized examples").first.scroll_into_view_if_needed()
    # The 32 px copies are the only PNG examples of the tab (examples/cifar32/).
    page.locator("button.gallery-item:visible:has(img[src$='/cow.png'])").first.click()
    page.get_by_role("button", name="Colourize", exact=True).click()
    page.get_by_text("Colourized 32×32 px").wait_for()
    _wait_for_images(page, "#colour-results", 5)


def test_segment_tab_with_a_u2netp_mask_example(page):
    _tab(page, "Segment")
    # The first examples are farm photos with U²-Net-p's masks: scores read as agreement, and the
    # threshold and calibration plots appear with their captions.
    page.get_by_text("Examples (click one)").last.scroll_into_view_if_needed()
    page.locator("tr:visible:has(img[src$='/horse.webp'])").first.click()  # a photo and its mask
    page.locator("#segment-mask img").first.wait_for()
    page.get_by_role("button", name="Segment", exact=True).click()
    page.get_by_text("Segmented ").wait_for()
    for elem_id in ("overlay-ce", "overlay-iou", "disagreement", "cutout-ce", "cutout-iou"):
        _wait_for_images(page, f"#{elem_id}", 1)
    page.get_by_text("Agreement with U²-Net-p").first.wait_for()
    assert "agrees with U²-Net-p" in page.inner_text("body")
    for elem_id in ("iou-curve", "calibration", "errors-ce", "errors-iou"):
        _wait_for_images(page, f"#{elem_id}", 1)
    for caption in ("#iou-curve-caption", "#calibration-caption"):
        assert page.locator(caption).is_visible()
    # Another task renders again, without a button.
    page.locator("#segment-task").get_by_label("Horses").check()
    page.get_by_text("looking for Horses").wait_for()
    # The toggle hides one head's column without recomputing.
    page.get_by_label("Soft-IoU head only").check()
    page.locator("#overlay-ce").wait_for(state="hidden")
    assert page.locator("#overlay-iou").is_visible()
    page.get_by_label("Both heads").check()
    _fits_the_screen(page)
    _shot(page, "segment_tab")


def test_inside_the_nets_tab(page):
    _tab(page, "Inside the nets")
    for probe in ("#probe-upsampled", "#probe-transposed", "#probe-unet"):  # every net, flat and ramp rows
        _wait_for_images(page, probe, 4)
    page.locator("#inside-photo input[type=file]").set_input_files(str(PHOTO))
    page.locator("#inside-photo img").first.wait_for()
    page.get_by_role("button", name="Look inside").click()
    page.get_by_text("UNet on your photo").wait_for()
    _wait_for_images(page, "#inside-layers", 9)
    assert page.locator("#inside-layers").get_by_text("← skip from down1.1").count() >= 1
    _fits_the_screen(page)
    _shot(page, "inside_the_nets_tab")


def test_training_replay_tab(page):
    _tab(page, "Training replay")
    caption = page.locator("#replay-caption")
    caption.get_by_text(re.compile(r"Epoch \d+")).wait_for()  # opens on the last epoch recorded
    _wait_for_images(page, "#replay-frame", 1)
    assert page.locator("#replay-missing").count() == 0, "replays ship with the weights"
    _fits_the_screen(page)
    _shot(page, "training_replay_tab")  # the last epoch, before playing dims the frame between epochs
    number = page.locator("#replay-epoch input[type=number]")
    number.fill("2")
    number.press("Enter")
    caption.get_by_text(re.compile(r"Epoch 2\b")).wait_for()
    page.get_by_role("button", name="▶ Play").click()
    caption.get_by_text(re.compile(r"Epoch [3-9]\b|Epoch \d\d")).wait_for()  # playing moves on


def test_model_tab(page):
    _tab(page, "Model")
    page.get_by_text("The hooked module's totals match").wait_for()
    _wait_for_images(page, "#model-curve-0", 1)
    _fits_the_screen(page)
    _shot(page, "model_tab")


def test_upload_paste_and_webcam_reach_the_app_as_uploaded_files(page):
    """The browser sends every picture as a file upload, whatever its source: the server refuses
    data: URLs and caps other request bodies (colorseg.app.server), and all three still work."""
    from colorseg.app.server import MAX_BODY_BYTES

    if page.width == PHONE:
        pytest.skip("the sources do not depend on the window's width: walked once, at the desktop's")

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
