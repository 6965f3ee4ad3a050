"""What a segmentation run writes: the body and heads as one weight set, and the curves."""

from __future__ import annotations

from pathlib import Path

import torch

from colorseg.weights import WeightSet
from colorseg.segmentation.models import DEFAULT_BACKBONE

# What each weight file is called (stem -> stem.safetensors + stem.json): one body, a head per task and loss.
SEG_BODY_STEM = "seg_body"
BODY_PLOT = "seg_body_curves.png"
HEADS_PLOT = "seg_heads_curves.png"


def seg_head_stem(task: str, loss: str) -> str:
    return f"seg_head_{task}_{loss}"


def save_segmentation(
    weights_dir: Path, body: torch.nn.Module, body_dtype, body_metadata: dict,
    heads: dict[str, dict[str, torch.nn.Module]], head_metadata: dict[tuple[str, str], dict],
) -> None:
    """Write the body and every head, tied to it by the body's sha256, as one set: a kill at
    any instant leaves either the previous body and heads or the new ones."""
    with WeightSet(weights_dir) as weight_set:
        weight_set.save_module(
            body, SEG_BODY_STEM, architecture=body_metadata.get("architecture", "DeepLabV3Body"),
            constructor=body_metadata.get("constructor", {"backbone": body_metadata.get("backbone", DEFAULT_BACKBONE)}),
            metadata=body_metadata, dtype=body_dtype,
        )
        body_sha256 = weight_set.digest(SEG_BODY_STEM)
        for (task, loss), metadata in head_metadata.items():
            weight_set.save_module(
                heads[task][loss], seg_head_stem(task, loss), architecture="DeepLabV3Head",
                constructor={}, metadata={**metadata, "body_sha256": body_sha256},
            )
    # Heads of tasks this run did not train belong to the previous body (the new body's JSON
    # lists its tasks, so they are never loaded): remove them.
    kept = {seg_head_stem(t, loss) for t, loss in head_metadata}
    for stale in Path(weights_dir).glob("seg_head_*.json"):
        if stale.stem not in kept:
            stale.with_suffix(".safetensors").unlink(missing_ok=True)
            stale.unlink()


def plot_curves(report_dir: Path, body_history: list[dict], head_histories: dict[str, list[dict]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if body_history:
        fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(10, 4))
        loss_ax.plot([r["epoch"] for r in body_history], [r["train_loss"] for r in body_history], "k-", label="train")
        scored = [r for r in body_history if any(k.endswith("_iou") and k.startswith("val_") for k in r)]
        for i, key in enumerate(sorted({k for r in scored for k in r if k.startswith("val_") and k.endswith("_iou")})):
            source, colour = key[len("val_"):-len("_iou")], f"C{i}"  # one colour a source in both panels
            iou_ax.plot([r["epoch"] for r in scored], [r[key] for r in scored], "o-", color=colour,
                        label=f"{source} IoU")
            loss_ax.plot([r["epoch"] for r in scored], [r[f"val_{source}_loss"] for r in scored], "o--", color=colour,
                         label=f"{source} validation")
        loss_ax.set(title="body: loss", xlabel="epoch")
        loss_ax.legend()
        iou_ax.set(title="body: validation IoU per source", xlabel="epoch", ylim=(0, 1))
        iou_ax.legend()
        fig.tight_layout()
        fig.savefig(report_dir / BODY_PLOT, dpi=100)
        plt.close(fig)
        written.append(BODY_PLOT)
    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in head_histories.items():
        epochs = [r["epoch"] for r in history]
        loss_ax.plot(epochs, [r["train_loss"] for r in history], label=f"{name} train")
        iou_ax.plot(epochs, [r["val_iou"] for r in history], label=f"{name}")
    loss_ax.set(title="heads on cached features: training loss", xlabel="epoch")
    iou_ax.set(title="heads: validation IoU (task's sources)", xlabel="epoch", ylim=(0, 1))
    loss_ax.legend(fontsize=7)
    iou_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report_dir / HEADS_PLOT, dpi=100)
    plt.close(fig)
    return [*written, HEADS_PLOT]
