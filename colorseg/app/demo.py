"""build_demo(): the Blocks with every tab, models loaded once (or handed in), queue configured."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import torch

from colorseg.app import colour_tab, inside_tab, model_tab, replay_tab, segment_tab
from colorseg.app.models import Loader, Models, load_models
from colorseg.app.server import protect
from colorseg.app.settings import QUEUE_SIZE, TORCH_THREADS, use_own_temp_folder
from colorseg.app.store import Context, PictureStore
from colorseg.app.uploads import READABLE, ReadableFiles

INTRO = """# colorseg
Colourize black-and-white photos with the three CNNs of the CSC413 colourization assignment, look
inside them, and segment photos (any object, flowers or horses) with DeepLabV3 heads trained with two losses."""

# Nothing may be wider than a phone's screen (400 px). gradio's gallery gives every column at least
# 100 px (its grid-template-columns), so five columns need over 500 px: galleries marked fit-gallery
# let columns shrink and show two a row on a narrow screen. Tables (fit-table) scroll sideways inside
# their own box, never the page; in Markdown tables (fit-markdown) long commands wrap, leaving the
# names their room. Captions under pictures are set smaller and subdued.
LAYOUT_CSS = """
.fit-gallery .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important; }
@media (max-width: 640px) {
  .fit-gallery .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
.fit-table, .fit-table .table-wrap { max-width: 100%; overflow-x: auto; }
.fit-markdown table { font-size: var(--text-sm); }
.fit-markdown code { white-space: normal; overflow-wrap: anywhere; }
.caption { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
"""


def build_demo(
    weights_dir: str | Path | None = None,
    device: str | None = None,
    *,
    models: Models | None = None,
    loader: Loader = load_models,
    readable: ReadableFiles = READABLE,
) -> gr.Blocks:
    """Lay out the tabs; nothing is launched, and ``launch()`` then serves with colorseg.app.server's
    protections. ``models`` (already loaded) wins over ``loader(weights_dir, device)``; ``readable``
    is the rule for the files a request may name."""
    use_own_temp_folder()  # before any component or store reads gradio's folder
    torch.set_num_threads(TORCH_THREADS)
    if models is None:
        models = loader(weights_dir, device)
    # In gradio's cache folder (GRADIO_TEMP_DIR), so that gradio serves and deletes the pictures.
    context = Context(models, PictureStore(Path(gr.utils.get_upload_folder()) / "colorseg"), readable)
    # No usage statistics: the app runs offline as often as not, and its users did not opt in.
    # delete_cache: every hour, delete result pictures older than an hour.
    with gr.Blocks(title="colorseg: colourize and segment", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Colourize", id="colourize"):
                colour_tab.create_tab(context)
            with gr.Tab("Segment", id="segment"):
                segment_tab.create_tab(context)
            with gr.Tab("Inside the nets", id="inside"):
                inside_tab.create_tab(context, demo)
            with gr.Tab("Training replay", id="replay"):
                replay_tab.create_tab(context)
            with gr.Tab("Model", id="model"):
                model_tab.create_tab(context, demo)
    demo.queue(max_size=QUEUE_SIZE)
    return protect(demo, readable, LAYOUT_CSS)
