"""colorseg demo: colourize photos with the assignment's three CNNs, segment them with DeepLabV3 heads.

    python app.py            # http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected

Environment (all optional):
    COLORSEG_WEIGHTS_DIR     weights folder (default weights/)
    COLORSEG_HUB_REPO        Hub model repo to fetch weights from, falling back to weights/ offline
    COLORSEG_HUB_REVISION    branch, tag or commit of that repo
    COLORSEG_DATA            local data whose validation images become examples (default data/)
    COLORSEG_DEVICE          cpu, cuda, ... (default: cuda when present)
    COLORSEG_CONCURRENCY     inference requests run at once (default 2)
    COLORSEG_TORCH_THREADS   torch threads per request (default 1)
    COLORSEG_PICTURE_STORE_BYTES  result pictures kept on disk, at most (default 2000000000); oldest go first
    GRADIO_TEMP_DIR          uploads and results (default: <system temp>/colorseg, this app's own)

This file only assembles the app (colorseg/app/: a module per tab) and stays at the
repository's root, where a Hugging Face Space looks for it. ``demo`` is built at import
(models loaded once) and launched only when run as a script, so tests and Spaces can
import it. Weights that are missing or damaged do not stop the app: the affected tab says
what is wrong and how to regenerate them.
"""

from __future__ import annotations

from colorseg.app.demo import build_demo

demo = build_demo()

if __name__ == "__main__":
    # Host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860); no share
    # link unless GRADIO_SHARE=True. The upload and request-body caps, the file-route guard and the
    # monitoring switch come with the demo (colorseg/app/server.py).
    demo.launch()
