"""Settings shared by the app's modules: paths and how many requests run at once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from colorseg.paths import DEFAULT_REPORTS_DIR, REPO_ROOT

REPO = REPO_ROOT  # app.py, examples/, reports/ sit here (also on a Space)
REPORTS_DIR = DEFAULT_REPORTS_DIR

# The queue runs this many inference requests at once. Each uses one torch thread: on a
# 2-core machine shared with other work, two intra-op threads per request made the colour
# nets about 10x slower (measured: 20 ms -> 250 ms per net), while one thread per request
# keeps both cores busy with two requests and latency steady.
CONCURRENCY = int(os.environ.get("COLORSEG_CONCURRENCY", "2"))
TORCH_THREADS = int(os.environ.get("COLORSEG_TORCH_THREADS", "1"))
QUEUE_SIZE = 64  # requests waiting beyond this are refused at once ("queue full") instead of timing out
# Every endpoint that runs a net shares one pool of CONCURRENCY workers: they compete for the same cores.
INFERENCE = {"concurrency_limit": CONCURRENCY, "concurrency_id": "inference"}
# Result pictures kept on disk at most, in bytes (COLORSEG_PICTURE_STORE_BYTES): beyond it the oldest
# go first. 2 GB holds several minutes of a busy Space's results (12-30 GB an hour at full resolution)
# and fits the smallest Space disks with room to spare.
PICTURE_STORE_BYTES = int(os.environ.get("COLORSEG_PICTURE_STORE_BYTES", str(2 * 10**9)))


def use_own_temp_folder() -> Path:
    """gradio's temp folder for this app: GRADIO_TEMP_DIR when set, else ``<system temp>/colorseg``,
    made readable by this user only. gradio's default, ``<system temp>/gradio``, is shared by every
    gradio app on the machine, whose uploads and results this app's file route and readable-files
    rule (both: anything in that folder) would then serve and read. Set before gradio reads it."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        folder = Path(tempfile.gettempdir()) / "colorseg"
        folder.mkdir(mode=0o700, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return Path(os.environ["GRADIO_TEMP_DIR"])
