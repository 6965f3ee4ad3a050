import json

import pytest
import torch
from support import save_tiny_unet

from colorseg.errors import WeightsError
from colorseg.registry import create_model
from colorseg.weights_io import load_module, save_module


def test_round_trip_gives_identical_outputs(tmp_path):
    model = save_tiny_unet(tmp_path)
    loaded, description = load_module(tmp_path, "net")
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(model(x), loaded(x))
    assert description["architecture"] == "UNet" and len(description["sha256"]) == 64
    assert not list(tmp_path.glob("*.tmp")), "temporary files must not be left behind"


def test_damaged_file_is_refused_with_the_regenerate_command(tmp_path):
    save_tiny_unet(tmp_path)
    path = tmp_path / "net.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"damaged weight file .*net\.safetensors.*train_all\.py --only colour"):
        load_module(tmp_path, "net")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(WeightsError, match=r"missing weight description .*net\.json"):
        load_module(tmp_path, "net")
    save_tiny_unet(tmp_path)
    (tmp_path / "net.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"missing weight file .*net\.safetensors"):
        load_module(tmp_path, "net")


def test_garbage_json_is_refused(tmp_path):
    (tmp_path / "net.json").write_text("{not json")
    with pytest.raises(WeightsError, match="damaged weight description"):
        load_module(tmp_path, "net")


def test_tensors_that_do_not_fit_the_architecture_are_refused(tmp_path):
    save_tiny_unet(tmp_path)
    description = json.loads((tmp_path / "net.json").read_text())
    description["constructor"]["num_filters"] = 8
    (tmp_path / "net.json").write_text(json.dumps(description))
    with pytest.raises(WeightsError, match="does not fit UNet"):
        load_module(tmp_path, "net")


def test_interrupted_save_keeps_the_previous_weights(tmp_path, monkeypatch):
    save_tiny_unet(tmp_path)
    before = (tmp_path / "net.safetensors").read_bytes(), (tmp_path / "net.json").read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("colorseg.weight_set.save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_tiny_unet(tmp_path)
    assert ((tmp_path / "net.safetensors").read_bytes(), (tmp_path / "net.json").read_text()) == before
    assert not list(tmp_path.glob(".*tmp"))
    load_module(tmp_path, "net")


def test_float16_storage_loads_back_as_float32(tmp_path):
    model = create_model("ConvTransposeNet", num_filters=4)
    save_module(model, tmp_path, "half", architecture="ConvTransposeNet", constructor={"num_filters": 4}, metadata={}, dtype=torch.float16)
    loaded, description = load_module(tmp_path, "half")
    assert description["stored_dtype"] == "float16"
    assert next(loaded.parameters()).dtype == torch.float32
