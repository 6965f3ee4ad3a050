import json
import re

import pytest
import torch
from support import make_colour_weights, save_tiny_unet

from colorseg.colour.inference import load_colourizers
from colorseg.colour.models import COLOUR_STEMS
from colorseg.errors import WeightsError
from colorseg.registry import SEG_BODY, SEG_HEAD, create_model, list_models
from colorseg.weights import load_module, save_module


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

    monkeypatch.setattr("colorseg.weights.sets.save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_tiny_unet(tmp_path)
    assert ((tmp_path / "net.safetensors").read_bytes(), (tmp_path / "net.json").read_text()) == before
    assert not list(tmp_path.glob(".*tmp"))
    load_module(tmp_path, "net")


def test_float16_storage_loads_back_as_float32(tmp_path):
    model = create_model("ConvTransposeNet", num_filters=4)
    save_module(
        model,
        tmp_path,
        "half",
        architecture="ConvTransposeNet",
        constructor={"num_filters": 4},
        metadata={},
        dtype=torch.float16,
    )
    loaded, description = load_module(tmp_path, "half")
    assert description["stored_dtype"] == "float16"
    assert next(loaded.parameters()).dtype == torch.float32


# ---------------------------------------------------------------- descriptions are data: bounded, matched to their file


def _edit(path, change):
    description = json.loads(path.read_text())
    change(description)
    path.write_text(json.dumps(description))


@pytest.mark.parametrize(
    "constructor, words",
    [
        ({"kernel": -1}, "kernel=-1 is not allowed; it must be an integer from 1 to 7"),
        ({"num_filters": 100_000}, "num_filters=100000 is not allowed"),
        ({"num_filters": 4.0}, "num_filters=4.0 is not allowed"),
        ({"kernel": True}, "kernel=True is not allowed"),
        ({"dilation": 2}, "UNet has no field 'dilation'"),
    ],
)
def test_constructor_values_out_of_their_declared_range_are_refused_before_building(
    tmp_path, monkeypatch, constructor, words
):
    from colorseg import registry

    save_tiny_unet(tmp_path)
    _edit(tmp_path / "net.json", lambda d: d["constructor"].update(constructor))
    monkeypatch.setitem(registry._BUILDERS, "UNet", lambda **kwargs: pytest.fail(f"built with {kwargs}"))
    with pytest.raises(WeightsError, match=re.escape(words)):
        load_module(tmp_path, "net")


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("working_size", 20000, "working_size=20000 is not allowed; it must be an integer from 16 to 1024"),
        ("tasks", ["../../elsewhere"], "tasks=['../../elsewhere'] is not allowed"),
        ("weights_file", "../other.safetensors", "weights_file='../other.safetensors' is not allowed"),
        ("flip_average", "yes", "unknown flip_average 'yes'; it must be one of True, False"),
    ],
)
def test_other_values_that_loading_reads_are_bounded(tmp_path, field, value, words):
    save_tiny_unet(tmp_path)
    _edit(tmp_path / "net.json", lambda d: d.update({field: value}))
    with pytest.raises(WeightsError, match="unusable weight description .*" + re.escape(words)):
        load_module(tmp_path, "net")


def test_a_huge_description_is_not_read(tmp_path, monkeypatch):
    save_tiny_unet(tmp_path)
    _edit(tmp_path / "net.json", lambda d: d.update(padding="x" * (1 << 20)))
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(WeightsError, match="too large to be a colorseg weight description"):
        load_module(tmp_path, "net")


def test_a_colour_description_must_describe_its_own_net(tmp_path):
    make_colour_weights(tmp_path)
    unet, transposed = (tmp_path / f"{COLOUR_STEMS[name]}.json" for name in ("UNet", "ConvTransposeNet"))
    texts = unet.read_text(), transposed.read_text()
    unet.write_text(texts[1])
    transposed.write_text(texts[0])
    models = load_colourizers(tmp_path)
    assert list(models.nets) == ["PoolUpsampleNet"]
    assert "describes 'ConvTransposeNet', but colour_UNet holds UNet" in models.problems["UNet"]
    swapped = models.problems["ConvTransposeNet"]
    assert "describes 'UNet', but colour_ConvTransposeNet holds ConvTransposeNet" in swapped


def test_segmentation_files_must_hold_a_body_and_heads(tmp_path):
    from colorseg.segmentation.inference import SEG_BODY_STEM

    assert {"DeepLabV3Body", "LiteDeepLabBody"} <= set(list_models(kind=SEG_BODY))
    save_tiny_unet(tmp_path)
    for name in ("net.json", "net.safetensors"):
        (tmp_path / name).rename(tmp_path / name.replace("net", SEG_BODY_STEM))
    _edit(tmp_path / f"{SEG_BODY_STEM}.json", lambda d: d.update(weights_file=f"{SEG_BODY_STEM}.safetensors"))
    with pytest.raises(WeightsError, match="describes 'UNet', but seg_body holds DeepLabV3Body or LiteDeepLabBody"):
        load_module(tmp_path, SEG_BODY_STEM, expect=SEG_BODY)
    assert load_module(tmp_path, SEG_BODY_STEM)[1]["architecture"] == "UNet", "no expectation: any registered module"


def test_every_registered_module_declares_each_constructor_field():
    from torch import nn

    from colorseg.registry import register_model

    with pytest.raises(TypeError, match="allowed values"):
        register_model(nn.Identity)  # the bare decorator of old: no declaration
    with pytest.raises(TypeError, match="declare the allowed values of exactly its constructor fields"):
        register_model({"width": range(1, 9)}, kind=SEG_HEAD)(lambda width, depth: nn.Identity())
