"""Start ``python app.py`` as its own process, as a Space does, and wait until it answers.

Not a test module (no ``test_`` prefix): tests that need the real start-up path (environment
variables, working directory, module-level ``demo``) share it. Tests that only need the Blocks
build it in-process instead (test_app_api.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from app_support import free_port


@contextlib.contextmanager
def running_app(app_dir: Path, env: dict[str, str], log_path: Path, timeout_s: float = 240.0) -> Iterator[str]:
    """Run ``app_dir/app.py`` (cwd ``app_dir``) on a free port with ``env`` added to a copy of
    this process's environment; yield its local URL once it answers HTTP. ``GRADIO_SERVER_NAME``
    may be 0.0.0.0 (a Space's setting): the URL always uses 127.0.0.1. Stops the process after."""
    port = free_port()
    full_env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", **env}
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=app_dir, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app.py did not answer within {timeout_s:.0f}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
