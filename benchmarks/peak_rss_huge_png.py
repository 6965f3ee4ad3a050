"""Server peak RSS when callers send a small PNG that declares a huge size.

    python benchmarks/peak_rss_huge_png.py                    # this checkout's app.py, 1 then 4 at once
    python benchmarks/peak_rss_huge_png.py --app-dir /tmp/old # another checkout (e.g. before a fix)
    python benchmarks/peak_rss_huge_png.py --via data-url     # only inline, as a data: URL

Starts ``python app.py`` from ``--app-dir`` on a free loopback port (its committed weights),
warms it with one normal /colorize request, resets the kernel's peak-RSS counter
(/proc/PID/clear_refs), then sends the 13000x13000 all-black RGB PNG (about 0.5 MB, under
PIL's refusal limit) to /colorize from N callers at once and reads VmHWM, the server's peak
resident memory since the reset. The PNG goes as an upload (gradio_client's handle_file) and,
with ``--via data-url``, inline in the JSON request as a ``data:image/png;base64,...`` URL, which
gradio itself would decode before any handler. Linux only. Prints one line per way and N.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # run from anywhere, not installed
from support import huge_png  # noqa: E402  (the tests' decompression-bomb PNG, one definition)


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app-dir", type=Path, default=REPO)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--via", nargs="+", choices=("upload", "data-url"), default=["upload", "data-url"])
    args = parser.parse_args()
    import httpx
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as scratch:
        png = Path(scratch) / "huge.png"
        png.write_bytes(huge_png(13000, 13000))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_TEMP_DIR": str(Path(scratch) / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
        }
        server = subprocess.Popen(
            [sys.executable, "app.py"], cwd=args.app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.time() + 240
            while True:
                try:
                    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("the app did not start")
                    time.sleep(1)
            client.predict(handle_file(str(args.app_dir / "examples" / "coffee_cup.jpg")), api_name="/colorize")
            print(f"app: {args.app_dir}; {png.stat().st_size / 1e3:.0f} kB PNG declaring 13000x13000 RGB", flush=True)
            inline = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()

            def send(via: str) -> str:
                if via == "upload":
                    client.predict(handle_file(str(png)), api_name="/colorize")
                    return "ok"
                # As any HTTP client can: the picture inline, every input given (the raw route wants them all).
                data = [
                    {"path": None, "url": inline, "meta": {"_type": "gradio.FileData"}},
                    ["UNet"],
                    64,
                    "annealed mean",
                    0.38,
                ]
                posted = httpx.post(f"{url}gradio_api/call/colorize", json={"data": data}, timeout=600)
                if posted.status_code != 200:
                    return f"HTTP {posted.status_code}"
                events = httpx.get(f"{url}gradio_api/call/colorize/{posted.json()['event_id']}", timeout=600).text
                return "ok" if "event: complete" in events else events.split("data:", 1)[-1].strip()

            for via in args.via:
                for callers in args.callers:
                    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
                    before = status_kb(server.pid, "VmRSS")
                    answers: list[str] = []

                    def call(via: str = via, answers: list[str] = answers) -> None:
                        try:
                            answers.append(send(via)[:100])
                        except Exception as error:  # noqa: BLE001 - the refusal is the expected answer
                            answers.append(str(error)[:100])

                    threads = [threading.Thread(target=call) for _ in range(callers)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    peak = status_kb(server.pid, "VmHWM")
                    print(
                        f"{via}, {callers} caller(s) at once: server RSS {before / 1024:.0f} MB before, "
                        f"peak {peak / 1024:.0f} MB (+{(peak - before) / 1024:.0f} MB); "
                        f"answers: {sorted(set(answers))}",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
