"""Training pieces: cached features equal the end-to-end frozen network, BatchNorm fix, heads."""

import copy

import pytest
import torch

from colorseg.segmentation import heads as seg_heads
from colorseg.segmentation import losses as seg_losses
from colorseg.segmentation import train as seg_train
from colorseg.segmentation.augment import Augmentation
from colorseg.segmentation.models import DeepLabV3Body, DeepLabV3Head, SegmentationNet, freeze_body, imagenet_normalize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def body() -> DeepLabV3Body:
    torch.manual_seed(0)
    return DeepLabV3Body().eval()


def _images_and_masks(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
    masks = torch.rand(n, size, size, generator=generator) > 0.7
    return images, masks


@pytest.mark.parametrize("loss_name", ["cross_entropy", "soft_iou"])
def test_cached_features_give_the_end_to_end_loss_and_gradients(body, loss_name):
    loss_fn = seg_losses.LOSSES[loss_name]
    images, masks = _images_and_masks(3, 64)
    torch.manual_seed(1)
    head = DeepLabV3Head()

    end_to_end = SegmentationNet(copy.deepcopy(body), copy.deepcopy(head))
    freeze_body(end_to_end)
    end_to_end.train()
    loss_e2e = loss_fn(end_to_end(images.float()), masks)
    loss_e2e.backward()

    features = seg_heads.compute_features(body, images, batch_size=2)
    cached = seg_heads.CachedHead(copy.deepcopy(head), (64, 64))
    loss_cached = loss_fn(cached(features), masks)
    loss_cached.backward()

    assert loss_cached.item() == pytest.approx(loss_e2e.item(), rel=1e-5)
    assert torch.allclose(cached.head.weight.grad, end_to_end.head.weight.grad, rtol=1e-4, atol=1e-7)
    assert torch.allclose(cached.head.bias.grad, end_to_end.head.bias.grad, rtol=1e-4, atol=1e-7)


def test_batchnorm_statistics_are_recomputed_over_the_training_images():
    torch.manual_seed(0)
    body = DeepLabV3Body()
    images, _ = _images_and_masks(24, 64, seed=3)
    batchnorms = [m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # The trap: torchvision's MobileNetV3 BatchNorm layers use momentum 0.01.
    assert any(m.momentum == 0.01 for m in batchnorms)
    # A few training steps leave the running statistics far from the data's.
    optimizer = torch.optim.SGD(body.parameters(), lr=0.01)
    body.train()
    for _ in range(3):
        optimizer.zero_grad()
        body(images.float()).pow(2).mean().backward()
        optimizer.step()

    # What each BatchNorm sees over the whole training set (one batch) when normalising with
    # batch statistics, with dropout off as at inference.
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, i[0].detach())) for m in batchnorms]
    body.eval()
    for m in batchnorms:
        m.train()
    with torch.no_grad():
        train_mode_output = body(images.float())
    for hook in hooks:
        hook.remove()

    def relative_error() -> float:
        with torch.no_grad():
            eval_output = body.eval()(images.float())
        return ((eval_output - train_mode_output).norm() / train_mode_output.norm()).item()

    stale = relative_error()
    momenta = [m.momentum for m in batchnorms]
    seg_train.recompute_bn_statistics(body, images, batch_size=len(images))
    assert [m.momentum for m in batchnorms] == momenta  # restored
    for m in batchnorms:
        x = seen[m]
        assert torch.allclose(m.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
        assert torch.allclose(m.running_var, x.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3, atol=1e-5)
    fixed = relative_error()
    # Not 0: eval mode divides by the unbiased variance, batch statistics by the biased one,
    # which differ noticeably where a 64 px input leaves 4x4 (or 1x1) feature maps.
    assert stale > 0.8 and fixed < 0.25, (stale, fixed)


def test_train_one_epoch_and_evaluate_on_cached_features():
    # Features whose channel 0 says where the foreground is: a head can learn it.
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(12, 256, 4, 4, generator=generator)
    masks = torch.nn.functional.interpolate(features[:, :1], size=(16, 16), mode="bilinear")[:, 0] > 0
    torch.manual_seed(0)
    recipe = seg_heads.HeadRecipe(epochs=15, lr=0.05, batch_size=4)
    head, history = seg_heads.train_head("cross_entropy", features, masks, features, masks, recipe, generator)
    assert [row["epoch"] for row in history] == list(range(1, 16))
    assert set(history[-1]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_iou",
        "val_miou_thresholded",
        "val_pixel_accuracy",
        "seconds",
    }
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_pixel_accuracy"] > 0.9
    assert not head.training


def test_balanced_epochs_draw_equally_from_every_source():
    from colorseg.segmentation.sources import balanced_epoch

    sources = torch.tensor([0] * 10 + [1] * 3 + [2] * 40)
    order = balanced_epoch(sources, 12, torch.Generator().manual_seed(0))
    assert torch.bincount(sources[order]).tolist() == [12, 12, 12]
    small = order[sources[order] == 1]
    assert sorted(small.tolist()) == sorted([10, 11, 12] * 4)  # each of the 3 images 4 times
    big = order[sources[order] == 2]
    assert len(set(big.tolist())) == 12  # no repeats where the source has enough images


def test_epochs_draw_each_named_source_its_own_count():
    from colorseg.segmentation.data import SegmentationTensors
    from colorseg.segmentation.sources import balanced_epoch

    sources = torch.tensor([0] * 10 + [1] * 3 + [2] * 40)
    order = balanced_epoch(sources, [5, 0, 30], torch.Generator().manual_seed(0))
    assert torch.bincount(sources[order]).tolist() == [5, 3, 30]  # 0: each of its images once
    mixture = SegmentationTensors(
        torch.zeros(53, 3, 4, 4, dtype=torch.uint8),
        torch.zeros(53, 4, 4, dtype=torch.uint8),
        [str(i) for i in range(53)],
        sources,
        ("davis", "flowers", "horses"),
    )
    recipe = seg_train.BodyRecipe(samples_per_source=7, source_samples={"horses": 11, "elsewhere": 99})
    order = seg_train.epoch_order(mixture, recipe, torch.Generator().manual_seed(0))
    assert torch.bincount(sources[order]).tolist() == [7, 7, 11]  # unnamed sources: samples_per_source


def test_a_last_batch_of_one_is_merged_for_batchnorm_after_pooling():
    """An epoch of 9 images in batches of 4 ends with 1 image: the body's BatchNorm after the
    ASPP's global pooling cannot train on it, so train_body asks for min_batch=2."""
    from colorseg.training import train_one_epoch

    seen = []

    def loss_fn(out, target):
        seen.append(len(out))
        return out.mean()

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, targets = torch.randn(9, 2), torch.zeros(9)
    train_one_epoch(model, optimizer, loss_fn, inputs, targets, batch_size=4, min_batch=2)
    assert seen == [4, 5]
    seen.clear()
    train_one_epoch(model, optimizer, loss_fn, inputs, targets, batch_size=4)
    assert seen == [4, 4, 1]


def test_ranks_paste_the_objects_one_process_would():
    """Copy-paste takes a row's object from the next row of the global batch, which may live on
    the other rank: each rank's slice of the augmented batch equals one process's rows."""
    images = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    masks = (torch.rand(6, 24, 24) > 0.6).to(torch.uint8)
    recipe = seg_train.BodyRecipe(augmentation=Augmentation(copy_paste=0.5))

    def prepared(rows):
        prepare = seg_train._augmenting_prepare(recipe, torch.Generator().manual_seed(3), 24)
        return prepare(images, masks, torch.arange(6), rows)

    whole, whole_target = prepared(slice(None))
    for rows in (slice(0, 3), slice(3, 6)):
        photo, target = prepared(rows)
        assert torch.equal(photo, whole[rows]) and torch.equal(target, whole_target[rows])


def test_body_training_runs_and_leaves_fresh_statistics():
    from colorseg.segmentation.data import SegmentationTensors

    torch.manual_seed(0)
    images, masks = _images_and_masks(6, 32)
    data = SegmentationTensors(images, masks, [str(i) for i in range(6)])
    net = SegmentationNet(DeepLabV3Body(), DeepLabV3Head())
    recipe = seg_train.BodyRecipe(
        epochs=3, batch_size=3, eval_every=2, small_size=16, small_fraction=0.34, augmentation=Augmentation()
    )
    history = seg_train.train_body(
        net, data, {"toy": data}, recipe, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    )
    assert [(row["epoch"], row["size"]) for row in history] == [(1, 16), (2, 32), (3, 32)]
    assert ["val_toy_iou" in row for row in history] == [False, True, True]  # every 2nd and the last
    first_bn = next(m for m in net.body.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        first_conv_output = net.body.backbone["0"][0](imagenet_normalize(images))
    assert torch.allclose(first_bn.running_mean, first_conv_output.mean(dim=(0, 2, 3)), atol=1e-4)
