"""Weights on the Hugging Face Hub: fetch them for the app, publish them after training.

The app reads weights from a Hub model repo when ``COLORSEG_HUB_REPO`` names one
(optionally at ``COLORSEG_HUB_REVISION``), so a Space can stay small and pick up new
training runs without a new commit; without the variable, or when the Hub cannot be
reached, it uses the local ``weights/`` folder and says which it used.
``train_all.py --push-to-hub REPO`` publishes a weights folder with :func:`push_weights`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from colorseg.colour.palette import PALETTE_STEM
from colorseg.errors import REGENERATE_HINT, WeightsError
from colorseg.paths import DEFAULT_WEIGHTS_DIR

HUB_REPO_ENV = "COLORSEG_HUB_REPO"
HUB_REVISION_ENV = "COLORSEG_HUB_REVISION"
# A model repo holds the weights folder's tensors and JSON descriptions at its root and the
# training report (metrics JSON, curve PNGs) under reports/, where the app's Model tab looks.
WEIGHT_PATTERNS = ["*.safetensors", "*.json"]
REPORT_PATTERNS = ["*.json", "*.png", "*.md"]
REPORTS_IN_REPO = "reports"


@dataclass(frozen=True)
class WeightsSource:
    directory: Path
    message: str  # one sentence for the UI and the log: where the weights came from


def resolve_weights_dir(local_dir: str | Path = DEFAULT_WEIGHTS_DIR, repo_id: str | None = None) -> WeightsSource:
    """The folder to load weights from: a snapshot of the Hub repo, else ``local_dir``.

    ``repo_id`` defaults to the ``COLORSEG_HUB_REPO`` environment variable.
    """
    local_dir = Path(local_dir)
    repo_id = repo_id if repo_id is not None else os.environ.get(HUB_REPO_ENV, "").strip()
    if not repo_id:
        return WeightsSource(local_dir, f"Weights from the local folder {local_dir}.")
    from huggingface_hub import snapshot_download

    revision = os.environ.get(HUB_REVISION_ENV) or None
    try:
        path = snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            allow_patterns=WEIGHT_PATTERNS + [f"{REPORTS_IN_REPO}/{pattern}" for pattern in REPORT_PATTERNS],
        )
    except Exception as error:  # noqa: BLE001 - offline, unknown repo, rate limit...: all mean "use local"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return WeightsSource(
            local_dir,
            f"Could not fetch weights from the Hub repo {repo_id} ({reason}); "
            f"using the local folder {local_dir} instead.",
        )
    return WeightsSource(Path(path), f"Weights from the Hub repo {repo_id}" + (f" at {revision}." if revision else "."))


def _model_card(repo_id: str, weights_dir: Path) -> str:
    """A short README for the model repo: what is in it and how the app loads it."""
    lines = [
        "---",
        "library_name: colorseg",
        "tags: [image-colorization, image-segmentation, safetensors]",
        "---",
        f"# {repo_id.split('/')[-1]}",
        "",
        "Weights of colorseg (CNN colourization of the CSC413 assignment and DeepLabV3 heads",
        "fine-tuned with cross-entropy and soft-IoU losses), as `.safetensors` plus a JSON",
        "description each (architecture, constructor arguments, metrics, training command, sha256).",
        "",
        f"Use them in the colorseg app: `COLORSEG_HUB_REPO={repo_id} python app.py`.",
        f"Regenerate them: `{REGENERATE_HINT} --push-to-hub {repo_id}`.",
        "",
        "| file | architecture | metrics |",
        "| --- | --- | --- |",
    ]
    for description_path in sorted(weights_dir.glob("*.json")):
        try:
            description = json.loads(description_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        metrics = description.get("metrics") or {}
        shown = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in metrics.items()
            if isinstance(v, (int, float))
        )
        # The palette is a plain tensor, saved without an architecture.
        architecture = description.get("architecture", "palette" if description_path.stem == PALETTE_STEM else "?")
        lines.append(f"| {description.get('weights_file', description_path.stem)} | {architecture} | {shown} |")
    return "\n".join(lines) + "\n"


def _files(folder: Path | None, patterns: list[str]) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def push_weights(
    repo_id: str,
    weights_dir: str | Path = DEFAULT_WEIGHTS_DIR,
    token: str | None = None,
    report_dir: str | Path | None = None,
    private: bool | None = None,
) -> str:
    """Upload the weights (tensors + descriptions), the training report (to reports/) and a model
    card to the Hub model repo ``repo_id`` in one commit, creating the repo if needed.

    Returns the URL of the commit.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    weights_dir = Path(weights_dir)
    weights = _files(weights_dir, WEIGHT_PATTERNS)
    if not any(p.suffix == ".safetensors" for p in weights):
        raise WeightsError(f"no weights in {weights_dir} to push; create them with `{REGENERATE_HINT}`")
    reports = _files(Path(report_dir) if report_dir is not None else None, REPORT_PATTERNS)
    operations = [CommitOperationAdd(p.name, str(p)) for p in weights]
    operations += [CommitOperationAdd(f"{REPORTS_IN_REPO}/{p.name}", str(p)) for p in reports]
    operations.append(CommitOperationAdd("README.md", _model_card(repo_id, weights_dir).encode()))
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.create_commit(
        repo_id,
        operations,
        commit_message=f"colorseg weights ({len(weights)} files, {len(reports)} report files)",
        repo_type="model",
    )
    return commit.commit_url
