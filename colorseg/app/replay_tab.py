"""The "Training replay" tab: a few fixed images' predictions after every epoch, played back
from the replay files training writes into reports/ (colorseg.replay)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import gradio as gr

from colorseg.app import render
from colorseg.app.models import hide_server_paths
from colorseg.app.report import report_dirs
from colorseg.app.store import Context
from colorseg.replay import KINDS, Replay, ReplayError, load_replay

HELP = """Predictions on the example photos after every training epoch, recorded by the same training run
that made the weights: drag the epoch slider or press **Play** to watch a net learn. Colour nets: the
32 px farm photos, their own colours, the palette target they are trained to predict and each net's
colours as they form. Segmentation: the ImageNet body's fine-tuning (a temporary head on top of it), then
each task's two Part D heads on the frozen body, beside U²-Net-p's mask of each photo for reference."""
# What each recorded picture is, as the "Show" choice names it.
KEY_LABELS = {
    "argmax": "the net's colours (argmax)",
    "original": "the photos' own colours",
    "target": "palette target (what the net is trained to predict)",
    "photo": "the photos",
    "u2netp_reference": "U²-Net-p's masks (a reference, not ground truth)",
    "mask": "the body's temporary head",
    "cross_entropy": "cross-entropy head",
    "soft_iou": "soft-IoU head",
}
NO_REPLAYS = """**No training replays yet.** Training records them: run `python train_all.py` (or only part
of it, e.g. `python train_all.py --only segmentation`); it writes `reports/replay_colour_<Net>.json` and
`reports/replay_seg_<task>.json` with their PNG strips. Restart the app to see them here."""
TILE_PX = 160  # tiles are enlarged (nearest neighbour) to about this size: CIFAR tiles are 32 px


def replay_stems(folders: list[Path]) -> dict[str, Path]:
    """{stem: folder} of every replay index (``*.json`` written by colorseg.replay) in ``folders``;
    the first folder wins a stem found twice. Other JSON files (training reports) are skipped."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                index = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(index, dict) and index.get("kind") in KINDS and "keys" in index and "format_version" in index:
                found.setdefault(path.stem, folder)
    return found


def key_choices(keys: list[str]) -> list[tuple[str, str]]:
    """(label, key) for the "Show" radio."""
    return [(KEY_LABELS.get(key, key.replace("_", " ")), key) for key in keys]


def replay_label(stem: str) -> str:
    """replay_colour_UNet -> "colour: UNet"; replay_seg_horses -> "segmentation: horses"."""
    if stem == "replay_seg_body":
        return "segmentation: fine-tuning the ImageNet body"
    parts = stem.removeprefix("replay_").split("_", 1)
    kind = {"seg": "segmentation"}.get(parts[0], parts[0])
    return f"{kind}: {parts[1].replace('_', ' ')}" if len(parts) == 2 else stem


@functools.lru_cache(maxsize=8)
def _load(folder: str, stem: str, modified_ns: int) -> Replay:
    return load_replay(folder, stem)  # modified_ns is part of the key: a rewritten replay is read again


class ReplayHandlers:
    def __init__(self, context: Context, stems: dict[str, Path]):
        self.context, self.stems = context, stems

    def replay(self, stem: str) -> Replay:
        if stem not in self.stems:
            raise gr.Error(f"No replay named {stem!r}.")
        folder = self.stems[stem]
        try:
            return _load(str(folder), stem, (folder / f"{stem}.json").stat().st_mtime_ns)
        except (ReplayError, OSError) as error:
            why = hide_server_paths(str(error), folder)  # the report folder by its own name only
            raise gr.Error(f"The replay {stem} cannot be read ({why}); retrain to rewrite it.") from None

    def opening(self, stem: str) -> tuple[list[str], str, list[int], str, str]:
        """A replay's keys, the key to show first, the slider's epochs and that key's last frame
        with its caption. The first key shown is the one recorded most often (the net's output,
        not the photo or ground truth recorded once, at epoch 0); the slider spans every
        epoch of the replay, and each key shows its frame at or before the chosen epoch."""
        replay = self.replay(stem)
        key = max(replay.keys, key=lambda k: len(replay.key_epochs[k]))
        return (replay.keys, key, replay.epochs, *self.show(stem, key, replay.epochs[-1]))

    def choose(self, stem: str) -> tuple[gr.Radio, gr.Slider, str, str]:
        """Another replay chosen: its keys, its epoch range (at the last epoch), and that frame."""
        keys, key, epochs, frame, caption = self.opening(stem)
        return gr.Radio(key_choices(keys), value=key), epoch_slider(epochs), frame, caption

    def show(self, stem: str, key: str, epoch: float) -> tuple[str, str]:
        """The frame of ``key`` at the recorded epoch nearest at or before ``epoch``, and that epoch's losses."""
        replay = self.replay(stem)
        key = key if key in replay.key_epochs else replay.keys[0]
        recorded = replay.key_epochs[key]
        shown = max([e for e in recorded if e <= int(epoch)] or recorded[:1])
        picture = replay.frame(key, shown)
        frame = render.upscale(picture, max(picture.shape[:2]) * max(1, TILE_PX // replay.tile[0]))
        losses = replay.losses.get(shown, {})
        text = "; ".join(
            f"{split}: " + ", ".join(f"{name} {value:.3g}" for name, value in values.items())
            for split, values in losses.items()
        )
        names = ", ".join(replay.names)
        return (
            self.context.store.save(frame, lossless=True),
            f"**Epoch {shown}** of {recorded[-1]} ({KEY_LABELS.get(key, key)}; images: {names}). {text}",
        )

    def start(self, stem: str, key: str, epoch: float) -> tuple[int, gr.Timer]:
        """Play pressed: from the current epoch, or from the first when at the last."""
        recorded = self.replay(stem).key_epochs.get(key) or [int(epoch)]
        return (recorded[0] if int(epoch) >= recorded[-1] else int(epoch)), gr.Timer(active=True)

    def step(self, stem: str, key: str, epoch: float) -> tuple[Any, gr.Timer]:
        """Play: the next recorded epoch; the timer stops at the last one."""
        recorded = self.replay(stem).key_epochs.get(key) or [int(epoch)]
        later = [e for e in recorded if e > int(epoch)]
        if not later:
            return gr.skip(), gr.Timer(active=False)
        return later[0], gr.Timer(active=len(later) > 1)


def epoch_slider(epochs: list[int], **kwargs) -> gr.Slider:
    """The epoch slider at the last epoch; a replay of one epoch still gets a valid range
    (Gradio refuses a slider whose minimum equals its maximum)."""
    return gr.Slider(epochs[0], max(epochs[-1], epochs[0] + 1), value=epochs[-1], step=1, **kwargs)


def create_tab(context: Context) -> None:
    """Lay out the tab inside the current gr.Tab, then wire its events; without replays, say how to make them."""
    stems = replay_stems(report_dirs(context.models.weights_dir))
    handlers = ReplayHandlers(context, stems)
    if not stems:
        gr.Markdown(NO_REPLAYS, elem_id="replay-missing")
        return
    gr.Markdown(HELP)
    keys, first_key, epochs, first_frame, first_caption = handlers.opening(next(iter(stems)))
    with gr.Row():
        stem = gr.Dropdown(
            [(replay_label(s), s) for s in stems], value=next(iter(stems)), label="Replay", elem_id="replay-choice"
        )
        key = gr.Radio(key_choices(keys), value=first_key, label="Show")
        play = gr.Button("▶ Play", elem_id="replay-play")
    epoch = epoch_slider(epochs, label="Epoch", elem_id="replay-epoch")
    caption = gr.Markdown(first_caption, elem_id="replay-caption")
    frame = gr.Image(
        first_frame, label="Predictions after this epoch", height=360, interactive=False, elem_id="replay-frame"
    )
    timer = gr.Timer(0.7, active=False)

    stem.change(handlers.choose, inputs=stem, outputs=[key, epoch, frame, caption], api_visibility="private")
    for control in (key, epoch):
        control.change(
            handlers.show,
            inputs=[stem, key, epoch],
            outputs=[frame, caption],
            api_visibility="private",
            trigger_mode="always_last",
        )
    play.click(handlers.start, inputs=[stem, key, epoch], outputs=[epoch, timer], api_visibility="private")
    timer.tick(handlers.step, inputs=[stem, key, epoch], outputs=[epoch, timer], api_visibility="private")
