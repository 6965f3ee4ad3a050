"""Training shared by both halves: the one epoch loop (:func:`fit` over a :class:`Stage`),
resumable checkpoints, torchrun data parallelism, the run's configuration and provenance.

    loop.py          fit / Stage, train_one_epoch, evaluate, build_optimizer
    checkpoint.py    resumable checkpoints (safetensors + JSON) and what a stage does with them
    distributed.py   where training runs: torchrun / DDP context (shard, reduce, wrap), bf16 autocast
    config.py        RunConfig: folders, device, recorded command, DDP context, checkpointing
    provenance.py    library versions, the command without machine paths, data digests
    plots.py         training curves
"""

from colorseg.training.checkpoint import Checkpointing, ResumeError, finish_stage, resume_from, save_progress
from colorseg.training.distributed import amp_dtype_name, autocast_for
from colorseg.training.loop import (
    SINGLE,
    EpochHook,
    LossFn,
    MetricFn,
    Prepare,
    Stage,
    batches,
    build_optimizer,
    evaluate,
    fit,
    identity,
    train_one_epoch,
)

__all__ = [
    "SINGLE",
    "Checkpointing",
    "EpochHook",
    "LossFn",
    "MetricFn",
    "Prepare",
    "ResumeError",
    "Stage",
    "amp_dtype_name",
    "autocast_for",
    "batches",
    "build_optimizer",
    "evaluate",
    "finish_stage",
    "fit",
    "identity",
    "resume_from",
    "save_progress",
    "train_one_epoch",
]
