"""The DeepLabV3 body/head split, its exact ASPP shortcut, freezing and the pretrained path."""

import urllib.error

import pytest
import torch
from torch import nn
from torchvision.models import segmentation as tv_seg

from colorseg import registry
from colorseg.segmentation import models as seg_models
from colorseg.segmentation.models import HEAD_INDEX, AtrousConv2d, DeepLabV3Body, DeepLabV3Head, SegmentationNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torchvision_model(**kwargs) -> nn.Module:
    return tv_seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, **kwargs)


def test_body_plus_head_computes_torchvision_deeplabv3():
    torch.manual_seed(0)
    reference = _torchvision_model(num_classes=2, aux_loss=False).eval()
    body, head = DeepLabV3Body(), DeepLabV3Head()
    state = reference.state_dict()
    head_prefix = f"classifier.{HEAD_INDEX}."
    body.load_state_dict({k: v for k, v in state.items() if not k.startswith(head_prefix)})
    head.load_state_dict({k[len(head_prefix) :]: v for k, v in state.items() if k.startswith(head_prefix)})
    net = SegmentationNet(body, head).eval()
    images = torch.randn(2, 3, 72, 96)
    with torch.no_grad():
        assert torch.allclose(net(images), reference(images)["out"], atol=1e-5)
        assert body(images).shape == (2, seg_models.FEATURE_CHANNELS, 72 // 16 + 1, 96 // 16)


# Rate 12 on maps where every, some or most off-centre taps read padding, non-square too.
@pytest.mark.parametrize("height, width", [(5, 12), (8, 8), (12, 19), (14, 14), (16, 16), (13, 30), (40, 40)])
@pytest.mark.parametrize("bias", [False, True])
def test_atrous_conv_equals_plain_dilated_conv(height, width, bias):
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 3, 3, padding=12, dilation=12, bias=bias)
    atrous = AtrousConv2d(4, 3, 3, padding=12, dilation=12, bias=bias)
    atrous.load_state_dict(plain.state_dict())
    x = torch.randn(2, 4, height, width)
    x_plain, x_atrous = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_plain, out_atrous = plain(x_plain), atrous(x_atrous)
    assert torch.allclose(out_plain, out_atrous, atol=1e-6)
    grad = torch.randn_like(out_plain)
    out_plain.backward(grad)
    out_atrous.backward(grad)
    assert torch.allclose(plain.weight.grad, atrous.weight.grad, atol=1e-5)
    assert torch.allclose(x_plain.grad, x_atrous.grad, atol=1e-6)


def test_body_uses_atrous_convs_in_aspp_only():
    names = [name for name, m in DeepLabV3Body().named_modules() if isinstance(m, AtrousConv2d)]
    assert names == [f"classifier.0.convs.{i}.0" for i in (1, 2, 3)]


def test_registry_rebuilds_body_and_head():
    assert isinstance(registry.create_model("DeepLabV3Body", backbone="mobilenet_v3_large"), DeepLabV3Body)
    head = registry.create_model("DeepLabV3Head")
    assert isinstance(head, nn.Conv2d) and head.weight.shape == (2, 256, 1, 1)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'.*mobilenet_v3_large"):
        DeepLabV3Body("vgg")


def test_freezing_leaves_exactly_the_head_trainable():
    net = SegmentationNet(DeepLabV3Body(), DeepLabV3Head())
    trainable = seg_models.freeze_body(net)
    assert [name for name, p in net.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert {id(p) for p in trainable} == {id(net.head.weight), id(net.head.bias)}
    net.train()  # what a training loop calls: the frozen body must stay in eval mode
    assert not net.body.training and not any(m.training for m in net.body.modules())
    assert net.head.training


def _fake_coco_state(monkeypatch) -> dict:
    """Serve a random COCO-shaped DeepLabV3 state dict instead of downloading one."""
    state = _torchvision_model(num_classes=21, aux_loss=True).state_dict()
    requested = []

    def fake_load(url, *args, **kwargs):
        requested.append(url)
        return state

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", fake_load)
    return {"state": state, "requested": requested}


def test_pretrained_body_loads_torchvision_coco_weights(monkeypatch):
    fake = _fake_coco_state(monkeypatch)
    body = seg_models.pretrained_body("mobilenet_v3_large")
    weights = seg_models.BACKBONES["mobilenet_v3_large"][1]
    assert fake["requested"] == [weights.url]
    for key, value in body.state_dict().items():
        assert torch.equal(value, fake["state"][key]), key


def test_pretrained_body_offline_suggests_scratch(monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(seg_models.PretrainedUnavailable, match="--seg-source scratch"):
        seg_models.pretrained_body("mobilenet_v3_large")
