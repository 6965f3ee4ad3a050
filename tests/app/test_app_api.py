"""The named API endpoints through gradio_client, against the app launched on a free local port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_fakes import fake_models
from app_support import free_port, make_all_weights, save_photo
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from colorseg.app.demo import build_demo
from colorseg.app.examples import EXAMPLES_DIR
from colorseg.app.segment_handlers import TASK_LABELS
from colorseg.app.uploads import REFUSED_PATH


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    weights = make_all_weights(tmp_path_factory.mktemp("weights"))
    demo = build_demo(models=fake_models(weights))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(
            f"http://127.0.0.1:{port}/",
            verbose=False,
            analytics_enabled=False,
            download_files=str(tmp_path_factory.mktemp("downloads")),
        )
    finally:
        demo.close()


def test_api_lists_both_endpoints_with_defaults(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, first in (("/colorize", "image"), ("/segment", "image")):
        parameters = endpoints[name]["parameters"]
        assert parameters[0]["parameter_name"] == first and not parameters[0]["parameter_has_default"]
        assert all(p["parameter_has_default"] for p in parameters[1:]), f"{name}: only the image is required"


def test_colorize_endpoint(client, tmp_path):
    path = save_photo(tmp_path / "horse.png", 64, 48)
    gallery, slider, confidence, notes, *scoring = client.predict(handle_file(str(path)), api_name="/colorize")
    assert [item["caption"] for item in gallery] == [
        "Greyscale input",
        "PoolUpsampleNet",
        "ConvTransposeNet",
        "UNet",
        "Original colours",
    ]
    assert Image.open(gallery[3]["image"]).size == (64, 48)
    assert len(slider) == 2 and len(confidence) == 3 and "64×48" in notes
    # Added after the four outputs older callers unpack: each net against the photo's own colours.
    scores, score_notes, palette, target = scoring
    assert scores["headers"][0] == "Network" and [row[0] for row in scores["data"]] == [
        "PoolUpsampleNet",
        "ConvTransposeNet",
        "UNet",
    ]
    assert "comes closest" in score_notes and Image.open(palette).size[0] == 24 * 32
    # The upload's own name comes through gradio's upload folder to the downloads.
    assert Path(gallery[3]["image"]).name == "horse_UNet.jpg" and Path(target).name == "horse_target.png"


def test_colorize_endpoint_with_settings(client, tmp_path):
    path = save_photo(tmp_path / "photo.png", 64, 48, mode="L")
    gallery, *_ = client.predict(handle_file(str(path)), ["UNet"], 32, "argmax", 0.5, api_name="/colorize")
    assert [item["caption"] for item in gallery] == ["Greyscale input", "UNet"]


def test_segment_endpoint(client, tmp_path):
    path = save_photo(tmp_path / "photo.png", 64, 48)
    _, overlay_iou, mask_ce, _, _, scores, notes = client.predict(handle_file(str(path)), api_name="/segment")
    mask = np.asarray(Image.open(mask_ce))
    assert mask.shape[:2] == (48, 64) and set(np.unique(mask)) <= {0, 255}, "masks come back as lossless PNG"
    assert Image.open(overlay_iou).size == (64, 48)
    assert [row[0] for row in scores["data"]] == ["Cross-entropy head", "Soft-IoU head"]
    assert "agree on" in notes


def test_segment_endpoint_takes_the_task_last_with_a_default(client, tmp_path):
    parameters = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/segment"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == ["image", "ground_truth", "task"]
    assert parameters[2]["parameter_default"] == "objects"
    path = handle_file(str(save_photo(tmp_path / "photo.png", 64, 48)))
    pixels = {}
    for task in ("objects", "flowers", "horses"):
        *_, scores, notes = client.predict(path, None, task, api_name="/segment")
        pixels[task] = scores["data"][0][1]
        assert f"looking for **{TASK_LABELS[task]}**" in notes
    assert len(set(pixels.values())) == 3, "the task chooses the heads"
    *_, scores, _ = client.predict(path, api_name="/segment")  # an old caller: image only
    assert scores["data"][0][1] == pixels["objects"]
    with pytest.raises(AppError):
        client.predict(path, None, "cars", api_name="/segment")


def test_errors_reach_the_client_as_messages(client, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a picture")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/colorize")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/segment")


def test_gradio_prints_a_traceback_for_a_plain_gr_error_not_for_a_user_error(capfd):
    """gradio 6 prints every gr.Error's traceback to the server's console unless print_exception is
    False (gradio/queueing.py); colorseg.app.uploads.user_error sets it."""
    import gradio as gr

    from colorseg.app.uploads import user_error

    def plain(text):
        raise gr.Error("plain mistake")

    def quiet(text):
        raise user_error("quiet mistake")

    with gr.Blocks(analytics_enabled=False) as demo:
        text, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(plain, text, out, api_name="plain")
        gr.Button().click(quiet, text, out, api_name="quiet")
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        tiny = Client(demo.local_url, verbose=False, analytics_enabled=False)
        capfd.readouterr()
        with pytest.raises(AppError, match="quiet mistake"):
            tiny.predict("x", api_name="/quiet")
        assert "Traceback" not in capfd.readouterr().err
        with pytest.raises(AppError, match="plain mistake"):
            tiny.predict("x", api_name="/plain")
        assert "Traceback" in capfd.readouterr().err, "gradio's behaviour changed: revisit user_error"
    finally:
        demo.close()


def test_user_mistakes_leave_no_traceback_in_the_server_log(client, tmp_path, capfd):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a picture")
    photo = handle_file(str(save_photo(tmp_path / "photo.png", 32, 24)))
    capfd.readouterr()
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/colorize")
    with pytest.raises(AppError, match="No photo yet"):
        client.predict(None, api_name="/colorize")
    *_, notes = client.predict(photo, [], api_name="/colorize")[:4]
    assert "tick at least one" in notes
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/segment")
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------- only uploaded files are read

FILE_META = {"_type": "gradio.FileData"}


@pytest.fixture
def server_files(tmp_path):
    """A readable image on the server's own disk, outside gradio's folders, and a path that does not exist."""
    secret = save_photo(tmp_path / "server_secret.png", 64, 48)
    return {
        "existing": str(secret),
        "missing": str(tmp_path / "no_such_file.png"),
        "url": "http://127.0.0.1:9/server_secret.png",
    }


def _arguments(endpoint, position, upload, attack):
    arguments = [upload, upload] if endpoint == "/segment" else [upload]
    arguments[position] = attack
    return arguments


@pytest.mark.parametrize("endpoint,position", [("/colorize", 0), ("/segment", 0), ("/segment", 1)])
def test_gradio_client_cannot_make_the_server_open_its_files(client, tmp_path, server_files, endpoint, position):
    upload = handle_file(str(save_photo(tmp_path / "upload.png", 64, 48)))
    messages = {}
    for which, path in server_files.items():
        with pytest.raises(AppError) as caught:
            client.predict(*_arguments(endpoint, position, upload, {"path": path}), api_name=endpoint)
        messages[which] = str(caught.value)
    assert set(messages.values()) == {REFUSED_PATH}, "one refusal, the same whether the file exists or not"


def _raw_call(base: str, endpoint: str, data: list) -> str:
    """POST /gradio_api/call/<endpoint> as any HTTP client can, then read its event stream."""
    # The raw route wants every input (gradio_client fills in the defaults itself).
    if endpoint == "colorize":
        data = [*data, ["UNet"], 64, "annealed mean", 0.38]
    else:
        data = [*data, "objects"]
    posted = httpx.post(f"{base}gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    posted.raise_for_status()
    return httpx.get(f"{base}gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=120).text


def _raw_upload(base: str, path) -> dict:
    with open(path, "rb") as handle:
        answer = httpx.post(f"{base}gradio_api/upload", files={"files": (path.name, handle, "image/png")}, timeout=30)
    answer.raise_for_status()
    return {"path": answer.json()[0], "meta": FILE_META}


@pytest.mark.parametrize("endpoint,position", [("colorize", 0), ("segment", 0), ("segment", 1)])
@pytest.mark.parametrize("with_meta", [False, True], ids=["plain-dict", "filedata-meta"])
def test_raw_http_cannot_make_the_server_open_its_files(client, tmp_path, server_files, endpoint, position, with_meta):
    base = client.src if client.src.endswith("/") else client.src + "/"
    # Grey, so that it also serves as a mask (a picture in colour is refused as one).
    upload = _raw_upload(base, save_photo(tmp_path / "upload.png", 64, 48, mode="L"))
    answers = {}
    for which, path in server_files.items():
        attack = {"path": path, **({"meta": FILE_META} if with_meta else {})}
        answers[which] = _raw_call(base, endpoint, _arguments("/" + endpoint, position, upload, attack))
    for which, answer in answers.items():
        assert "event: error" in answer and "event: complete" not in answer, f"{which}: {answer[:300]}"
        assert "server_secret" not in answer and "no_such_file" not in answer and str(tmp_path) not in answer
    assert answers["existing"] == answers["missing"], "the answer must not tell whether a path exists"
    # A normal upload through the same route still works.
    assert "event: complete" in _raw_call(base, endpoint, _arguments("/" + endpoint, position, upload, upload))


def test_examples_and_their_thumbnails_still_work(client):
    base = client.src if client.src.endswith("/") else client.src + "/"
    config = httpx.get(f"{base}config", timeout=30).json()
    samples = [
        sample
        for component in config["components"]
        if component.get("type") == "dataset"
        for row in component["props"]["samples"]
        for sample in row
        if isinstance(sample, dict)
    ]
    assert samples, "the app lists examples"
    for sample in samples[:3]:
        url = sample["url"] if sample["url"].startswith("http") else base + sample["url"].lstrip("/")
        assert httpx.get(url, timeout=30).status_code == 200, "thumbnail served"
    # Clicking an example sends gradio's cached copy; the example file itself is allowed too.
    gallery, *_ = client.predict({"path": samples[0]["path"], "meta": FILE_META}, api_name="/colorize")
    assert gallery[0]["caption"] == "Greyscale input"
    gallery, *_ = client.predict({"path": str(EXAMPLES_DIR / "coffee_cup.jpg")}, api_name="/colorize")
    assert gallery[0]["caption"] == "Greyscale input"


# ---------------------------------------------------------------- inline pictures, request bodies, the file route


def _data_url(data: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_data_url_is_refused_before_anything_decodes_it(client, monkeypatch):
    from gradio import image_utils
    from support import huge_png

    from colorseg.app.uploads import INLINE_PICTURE

    decoded = []

    def decode(*args):  # in the server's thread: an ordinary error, answered as such
        decoded.append(args)
        raise RuntimeError("decoded")

    monkeypatch.setattr(image_utils, "decode_base64_to_image", decode)
    base = client.src if client.src.endswith("/") else client.src + "/"
    bomb = _data_url(huge_png(13000, 13000))  # 13000 x 13000 px: 2 GB once decoded
    for payload in ({"path": None, "url": bomb, "meta": FILE_META}, {"url": bomb}):
        answer = _raw_call(base, "colorize", [payload])
        assert "event: error" in answer and INLINE_PICTURE in answer, answer[:300]
    assert not decoded


def test_every_picture_input_refuses_data_urls_without_decoding(monkeypatch, tmp_path):
    """Not only the photo: any input that gradio would decode (the before/after slider feeds the
    pixel inspector) hands on file paths only."""
    import gradio as gr
    from gradio import image_utils
    from gradio.data_classes import ImageData

    from colorseg.app.uploads import INLINE_PICTURE

    monkeypatch.setattr(image_utils, "decode_base64_to_image", lambda *a: pytest.fail("decoded"))
    demo = build_demo(models=fake_models(make_all_weights(tmp_path)))
    inputs = {block for dependency in demo.fns.values() for block in dependency.inputs}
    pictures = [block for block in inputs if isinstance(block, (gr.Image, gr.ImageSlider))]
    assert any(isinstance(block, gr.ImageSlider) for block in pictures)
    inline = ImageData(url=_data_url(b"\x89PNG"), path=None)
    for block in pictures:
        payload = block.data_model.model_validate([inline, inline] if isinstance(block, gr.ImageSlider) else inline)
        with pytest.raises(gr.Error, match=re.escape(INLINE_PICTURE)):
            block.preprocess(payload)


def test_request_bodies_other_than_uploads_are_capped(client, tmp_path):
    from colorseg.app.server import BODY_TOO_LARGE, MAX_BODY_BYTES

    base = client.src if client.src.endswith("/") else client.src + "/"
    padding = "x" * (MAX_BODY_BYTES + 1)
    declared = httpx.post(f"{base}gradio_api/call/colorize", json={"data": [padding]}, timeout=30)
    assert declared.status_code == 413 and declared.json()["detail"] == BODY_TOO_LARGE

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"data": ["'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536
        yield b'"]}'

    streamed = httpx.post(
        f"{base}gradio_api/queue/join", content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert streamed.status_code == 413
    # An upload larger than the cap still goes through, and so does an ordinary call.
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > MAX_BODY_BYTES
    upload = _raw_upload(base, big)
    assert "event: complete" in _raw_call(base, "colorize", [upload])


def test_the_file_route_never_looks_up_a_path_outside_the_app_folders(client, tmp_path, monkeypatch):
    import os

    from colorseg.app.server import FILE_NOT_SERVED

    base = client.src if client.src.endswith("/") else client.src + "/"
    secret = save_photo(tmp_path / "probe_secret.png", 16, 16)
    looked_up = []

    def recording(function):
        def wrapper(path, *args, **kwargs):
            if "probe_" in os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else False:
                looked_up.append((function.__name__, os.fspath(path)))
            return function(path, *args, **kwargs)

        return wrapper

    for name in ("stat", "lstat", "open", "access", "readlink", "scandir", "listdir"):
        monkeypatch.setattr(os, name, recording(getattr(os, name)))
    answers = set()
    upload_folder = os.path.abspath(get_upload_folder())
    for path in (
        str(secret),
        str(tmp_path / "probe_missing.png"),
        "/etc/passwd",
        f"{upload_folder}/%2E%2E/%2E%2E{tmp_path}/probe_secret.png",
    ):
        for route in ("gradio_api/file=", "gradio_api/file/"):
            answer = httpx.get(f"{base}{route}{path}", timeout=30)
            assert answer.status_code == 403, (route, path)
            answers.add(answer.text)
    monkeypatch.undo()
    assert not looked_up, "refused paths are decided from their text alone"
    assert answers == {json.dumps({"detail": FILE_NOT_SERVED})}, "the same answer whether the file exists or not"
    # What the app serves itself is still served: an upload, and a result picture.
    upload = _raw_upload(base, save_photo(tmp_path / "upload.png", 32, 24))
    assert httpx.get(f"{base}gradio_api/file={upload['path']}", timeout=30).status_code == 200


def test_uploads_are_capped_at_50_mb(client):
    """Set by build_demo's launch() for every caller (app.py passes nothing)."""
    base = client.src if client.src.endswith("/") else client.src + "/"
    assert httpx.get(f"{base}config", timeout=30).json()["max_file_size"] == 50 * 1024**2


def test_the_app_stylesheet_keeps_galleries_and_tables_inside_a_phone_screen(client):
    """gradio 6 takes css in launch(): build_demo's launch adds the app's own (colorseg.app.demo.LAYOUT_CSS)."""
    base = client.src if client.src.endswith("/") else client.src + "/"
    config = httpx.get(f"{base}config", timeout=30).json()
    assert ".fit-gallery .grid-container" in config["css"] and "@media (max-width: 640px)" in config["css"]
    classes = {
        component["props"].get("elem_id"): component["props"].get("elem_classes") or []
        for component in config["components"]
    }
    for elem_id in ("colour-results", "colour-confidence", "probe-unet"):
        assert "fit-gallery" in classes[elem_id], elem_id
    assert "fit-table" in classes["colour-scores"] and "fit-table" in classes["inspect-summary"]


def test_the_monitoring_dashboard_is_off(client):
    base = client.src if client.src.endswith("/") else client.src + "/"
    for route in ("monitoring", "monitoring/summary", "gradio_api/monitoring", "gradio_api/monitoring/summary"):
        assert httpx.get(base + route, timeout=30).status_code in (403, 404), route


def test_errors_do_not_show_the_server_temp_paths(client, tmp_path, monkeypatch):
    from colorseg import image_io

    base = client.src if client.src.endswith("/") else client.src + "/"
    upload = _raw_upload(base, save_photo(tmp_path / "upload.png", 32, 24))

    def refused(source, *args, **kwargs):  # as an upload that the server may not read
        raise PermissionError(13, "Permission denied", str(source))

    monkeypatch.setattr(image_io.Image, "open", refused)
    answer = _raw_call(base, "colorize", [upload])
    assert "cannot be read (Permission denied)" in answer and get_upload_folder() not in answer


def test_a_folder_inside_the_upload_folder_is_refused_like_any_other_path(client, tmp_path):
    import os

    base = client.src if client.src.endswith("/") else client.src + "/"
    folder = os.path.join(get_upload_folder(), "a_folder_not_a_file")
    os.makedirs(folder, exist_ok=True)
    try:
        # gradio would record the folder as a file it made, and its cache clean-up fail on it.
        answer = _raw_call(base, "colorize", [{"path": folder, "meta": FILE_META}])
        assert "event: error" in answer and REFUSED_PATH in answer
    finally:
        os.rmdir(folder)
