"""Server-side latency of the app's endpoints and panels, and process start to first answer.

    python benchmarks/bench_app_latency.py                    # the committed weights in weights/
    python benchmarks/bench_app_latency.py --weights DIR
    python benchmarks/bench_app_latency.py --random-weights   # same architectures, random values

Measures, on a 512x512 photo (examples/astronaut_eileen_collins.jpg):
- colourize with all three nets: the /colorize handler, from the uploaded file to the
  pictures handed to gradio (decoding, inference, composition), median of --runs;
- segment with both heads: the /segment handler likewise (skipped, saying why, when the
  weights have no usable segmentation model); and, side by side on the same decoded photo, the
  model alone (one body pass over the photo and its mirror, both heads of the task) against
  rembg's U²-Net-p (its own pre- and post-processing; when requirements-baseline.txt is installed);
- layers: the "Inside the nets" explorer on PoolUpsampleNet (the most layers, 13) at the
  default working size: activations, a channel grid per layer, the pictures written;
- inspector: one click of the pixel inspector with all three nets (photo decoded again,
  three forward passes, bar charts, the HTML table);
- process start to first answer: ``python app.py`` started fresh on a free loopback
  port, until gradio_client has an answer from /colorize.
Targets: <= 100 ms, <= 300 ms (and no slower than U²-Net-p), <= 15 s; <= 200 ms each for layers and
inspector. Timings do not depend on the weights' values, so --random-weights measures the same
work when no trained weights exist yet; the output says which weights were used. The app's own thread setting applies
(COLORSEG_TORCH_THREADS, default 1 per request).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PHOTO = REPO / "examples" / "astronaut_eileen_collins.jpg"
TARGETS_MS = {"colorize": 100.0, "segment": 300.0, "layers": 200.0, "inspector": 200.0}
TARGETS_MS |= {"segment model": 300.0, "u2netp": float("inf")}  # the model is also compared with U²-Net-p
TARGET_START_S = 15.0


def random_weights(directory: Path) -> Path:
    """Palette, the three colour nets and the segmentation body + heads, randomly initialised,
    with the default architectures and the default segmentation working size."""
    import torch

    from colorseg.colour.models import COLOUR_MODEL_NAMES, COLOUR_STEMS
    from colorseg.colour.palette import NUM_COLOURS, save_palette
    from colorseg.files import sha256_of
    from colorseg.registry import create_model
    from colorseg.segmentation.inference import SEG_BODY_STEM, seg_head_stem
    from colorseg.segmentation.losses import SEG_LOSSES
    from colorseg.segmentation.sources import SEG_TASKS
    from colorseg.weights import save_module

    torch.manual_seed(0)
    save_palette(torch.rand(NUM_COLOURS, 3), directory, {"what": "random benchmark palette"})
    for name in COLOUR_MODEL_NAMES:
        save_module(
            create_model(name),
            directory,
            COLOUR_STEMS[name],
            architecture=name,
            constructor={},
            metadata={"metrics": {}},
        )
    body = save_module(
        create_model("LiteDeepLabBody"),
        directory,
        SEG_BODY_STEM,
        architecture="LiteDeepLabBody",
        constructor={},
        metadata={"image_size": 320, "tasks": list(SEG_TASKS), "metrics": {}, "flip_average": True},
    )
    for task in SEG_TASKS:
        for loss in SEG_LOSSES:
            save_module(
                create_model("DeepLabV3Head"),
                directory,
                seg_head_stem(task, loss),
                architecture="DeepLabV3Head",
                constructor={},
                metadata={"task": task, "loss": loss, "body_sha256": sha256_of(body), "metrics": {}},
            )
    return directory


def median_ms(fn, runs: int, warmup: int = 3) -> tuple[float, float, float]:
    """(median, min, max) wall time of fn() in ms over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), max(times)


def time_to_first_answer(weights: Path, timeout_s: float = 120.0) -> float:
    """Seconds from starting ``python app.py`` to the first /colorize answer."""
    import socket
    import urllib.request

    from gradio_client import Client, handle_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "COLORSEG_WEIGHTS_DIR": str(weights),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall the app
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        # Poll with a bare HTTP request: cheap, so the poller does not slow the start it measures.
        while True:
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"no answer from app.py within {timeout_s:.0f} s")
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {process.returncode}: {log.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=2):
                    break
            except OSError:  # not listening yet
                time.sleep(0.2)
        Client(url, verbose=False, analytics_enabled=False).predict(handle_file(str(PHOTO)), api_name="/colorize")
        return time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def import_seconds() -> float:
    """Seconds a fresh Python takes just to import gradio, torch and torchvision: the floor under
    the start-up time that no app code can lower, measured under the same machine load."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio, torch, torchvision"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights")
    parser.add_argument("--random-weights", action="store_true", help="benchmark randomly initialised weights")
    parser.add_argument("--runs", type=int, default=25, help="timed runs per endpoint (at least 20)")
    parser.add_argument("--skip-startup", action="store_true", help="do not time process start to first answer")
    args = parser.parse_args()
    if args.runs < 20:
        parser.error("--runs must be at least 20")

    with tempfile.TemporaryDirectory(prefix="colorseg-bench-") as scratch:
        weights = random_weights(Path(scratch)) if args.random_weights else args.weights
        label = "random weights (default architectures)" if args.random_weights else f"weights in {weights}"
        import torch

        from colorseg.app.colour_tab import ColourHandlers
        from colorseg.app.inside_tab import InsideHandlers
        from colorseg.app.inspector import InspectorHandlers
        from colorseg.app.models import load_models
        from colorseg.app.segment_handlers import SegmentHandlers
        from colorseg.app.settings import TORCH_THREADS
        from colorseg.app.store import Context, PictureStore
        from colorseg.app.uploads import ReadableFiles

        torch.set_num_threads(TORCH_THREADS)  # as build_demo does
        models = load_models(weights, device="cpu")
        if models.colour_problem:
            print("cannot benchmark:", models.colour_problem, sep="\n", file=sys.stderr)
            return 1
        context = Context(models, PictureStore(Path(scratch) / "pictures"), ReadableFiles(examples=[PHOTO]))
        colour, segment = ColourHandlers(context), SegmentHandlers(context)
        inside, inspector = InsideHandlers(context), InspectorHandlers(context)
        print(
            f"{label}; torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
            f"{os.cpu_count()} CPU cores, 512x512 photo, median of {args.runs} runs"
        )
        calls = {
            "colorize": lambda: colour.colorize(str(PHOTO)),
            # Each call from scratch: the tab remembers the last photos' probabilities for the
            # extras that follow a /segment call, which would skip the body pass being measured.
            "segment": lambda: (segment._recent.clear(), segment.segment(str(PHOTO))),
            "layers": lambda: inside.explore(str(PHOTO), "PoolUpsampleNet"),
            "inspector": lambda: inspector.inspect(str(PHOTO), None, 64, "annealed mean", 0.38, 256, 256),
        }
        if models.segment_problem:
            print(f"segment   skipped: {models.segment_problem.splitlines()[0]}")
            del calls["segment"]
        else:
            from colorseg.image_io import load_image

            photo = load_image(PHOTO).rgb
            calls["segment model"] = lambda: models.segmenter.probabilities(photo, tasks=("objects",))
            try:
                from colorseg.segmentation.baseline import U2NetP

                u2netp = U2NetP(threads=TORCH_THREADS)
                calls["u2netp"] = lambda: u2netp.probability(photo)
            except Exception as error:  # noqa: BLE001 - the baseline is optional
                print(f"u2netp    skipped: {error}")
        failed = False
        medians = {}
        for name, call in calls.items():
            median, low, high = median_ms(call, args.runs)
            medians[name] = median
            verdict = "ok" if median <= TARGETS_MS[name] else "OVER TARGET"
            failed |= median > TARGETS_MS[name]
            target = f"target <= {TARGETS_MS[name]:.0f} ms: {verdict}" if TARGETS_MS[name] < float("inf") else ""
            print(f"{name:13s} median {median:7.1f} ms (min {low:.1f}, max {high:.1f}); {target}")
        if "u2netp" in medians:
            ratio = medians["segment model"] / medians["u2netp"]
            failed |= ratio > 1
            print(f"segment model / u2netp: {ratio:.2f} (target <= 1: {'ok' if ratio <= 1 else 'SLOWER'})")
        if not args.skip_startup:
            seconds = time_to_first_answer(Path(weights))
            verdict = "ok" if seconds <= TARGET_START_S else "OVER TARGET"
            failed |= seconds > TARGET_START_S
            print(
                f"start     {seconds:7.1f} s from `python app.py` to the first /colorize answer; "
                f"target <= {TARGET_START_S:.0f} s: {verdict} (importing gradio, torch and torchvision "
                f"alone: {import_seconds():.1f} s)"
            )
        print(f"load average (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
