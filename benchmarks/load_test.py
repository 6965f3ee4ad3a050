"""Load test: concurrent gradio_client callers against a running app, mixing both endpoints.

    python benchmarks/load_test.py                       # starts app.py on a free loopback port
    python benchmarks/load_test.py --random-weights      # ... with randomly initialised weights
    python benchmarks/load_test.py --url http://127.0.0.1:7860/   # an app already running here

8 callers x 10 requests by default; each caller alternates /colorize and /segment (callers
start on different endpoints) on the 512x512 example photo. Reports failures and the
p50 / p95 of the client-side latency (upload, queue, inference, download), per endpoint
and overall. Only loopback addresses are accepted; the request count is bounded and the
script stops by itself. Exit status 1 when any request failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
PHOTO = REPO / "examples" / "astronaut_eileen_collins.jpg"
ENDPOINTS = ("/colorize", "/segment")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def start_app(weights: Path | None, timeout_s: float = 180.0) -> tuple[subprocess.Popen, str]:
    """Start ``python app.py`` on a free loopback port; return it and its URL once it answers."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    if weights is not None:
        env["COLORSEG_WEIGHTS_DIR"] = str(weights)
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise TimeoutError(f"app.py did not answer within {timeout_s:.0f} s")


def caller(url: str, index: int, requests: int, results: list[tuple[str, float, str | None]], lock) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, analytics_enabled=False)
    except Exception as error:  # noqa: BLE001 - a caller that cannot connect fails all its requests
        with lock:
            results += [("connect", 0.0, f"{type(error).__name__}: {error}")] * requests
        return
    for number in range(requests):
        endpoint = ENDPOINTS[(index + number) % len(ENDPOINTS)]
        started = time.perf_counter()
        error = None
        try:
            client.predict(handle_file(str(PHOTO)), api_name=endpoint)
        except Exception as failure:  # noqa: BLE001 - every failure kind counts the same: the request failed
            error = f"{type(failure).__name__}: {failure}"
        with lock:
            results.append((endpoint, time.perf_counter() - started, error))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app (loopback only); default: start app.py here")
    parser.add_argument("--weights", type=Path, help="weights folder for the started app (default: the app's)")
    parser.add_argument("--random-weights", action="store_true", help="start the app with random weights")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10, help="requests per caller")
    args = parser.parse_args()
    if args.callers * args.requests > 1000:
        parser.error("at most 1000 requests in one run")

    process = None
    with tempfile.TemporaryDirectory(prefix="colorseg-load-") as scratch:
        if args.url:
            if urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
                parser.error("--url must be a loopback address (127.0.0.1, localhost or ::1)")
            url = args.url
        else:
            weights = args.weights
            if args.random_weights:
                from bench_app_latency import random_weights

                weights = random_weights(Path(scratch))
            process, url = start_app(weights)
        try:
            results: list[tuple[str, float, str | None]] = []
            lock = threading.Lock()
            threads = [
                threading.Thread(target=caller, args=(url, i, args.requests, results, lock))
                for i in range(args.callers)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)

    failures = [r for r in results if r[2] is not None]
    print(
        f"{args.callers} callers x {args.requests} requests = {len(results)} requests in {wall:.1f} s "
        f"({len(results) / wall:.1f} requests/s); failures: {len(failures)}"
    )
    for name in (*ENDPOINTS, "all"):
        times = [t for endpoint, t, error in results if error is None and name in (endpoint, "all")]
        if times:
            print(
                f"{name:10s} n={len(times):3d}  p50 {percentile(times, 0.5) * 1000:7.0f} ms  "
                f"p95 {percentile(times, 0.95) * 1000:7.0f} ms  mean {statistics.fmean(times) * 1000:7.0f} ms"
            )
    for endpoint, _, error in failures[:5]:
        print(f"failed {endpoint}: {error}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
