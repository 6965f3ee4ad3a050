"""The named API endpoints through gradio_client, against the app launched on a free local port."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from test_app_support import free_port, install_fake_segment_module, make_all_weights, save_photo

import app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    weights = make_all_weights(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_fake_segment_module(monkeypatch)
        demo = app.build_demo(weights, device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False,
                     download_files=str(tmp_path_factory.mktemp("downloads")))
    finally:
        demo.close()


def test_api_lists_both_endpoints_with_defaults(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, first in (("/colorize", "image"), ("/segment", "image")):
        parameters = endpoints[name]["parameters"]
        assert parameters[0]["parameter_name"] == first and not parameters[0]["parameter_has_default"]
        assert all(p["parameter_has_default"] for p in parameters[1:]), f"{name}: only the image is required"


def test_colorize_endpoint(client, tmp_path):
    path = save_photo(tmp_path / "photo.png", 64, 48)
    gallery, slider, confidence, notes = client.predict(handle_file(str(path)), api_name="/colorize")
    assert [item["caption"] for item in gallery] == [
        "Greyscale input", "PoolUpsampleNet", "ConvTransposeNet", "UNet", "Original colours"
    ]
    assert Image.open(gallery[3]["image"]).size == (64, 48)
    assert len(slider) == 2 and len(confidence) == 3 and "64×48" in notes


def test_colorize_endpoint_with_settings(client, tmp_path):
    path = save_photo(tmp_path / "photo.png", 64, 48, mode="L")
    gallery, *_ = client.predict(
        handle_file(str(path)), ["UNet"], 32, "argmax", 0.5, api_name="/colorize"
    )
    assert [item["caption"] for item in gallery] == ["Greyscale input", "UNet"]


def test_segment_endpoint(client, tmp_path):
    path = save_photo(tmp_path / "photo.png", 64, 48)
    _, overlay_iou, mask_ce, _, _, scores, notes = client.predict(
        handle_file(str(path)), api_name="/segment"
    )
    mask = np.asarray(Image.open(mask_ce))
    assert mask.shape[:2] == (48, 64) and set(np.unique(mask)) <= {0, 255}, "masks come back as lossless PNG"
    assert Image.open(overlay_iou).size == (64, 48)
    assert [row[0] for row in scores["data"]] == ["Cross-entropy head", "Soft-IoU head"]
    assert "agree on" in notes


def test_errors_reach_the_client_as_messages(client, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a picture")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/colorize")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(junk)), api_name="/segment")
