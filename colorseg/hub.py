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

from colorseg.weights_io import DEFAULT_WEIGHTS_DIR, REGENERATE_HINT, WeightsError

HUB_REPO_ENV = "COLORSEG_HUB_REPO"
HUB_REVISION_ENV = "COLORSEG_HUB_REVISION"
# What a weights folder holds: tensors, their JSON descriptions, and the training report
# (metrics JSON and curve PNGs) that the app's Model tab shows.
WEIGHT_PATTERNS = ["*.safetensors", "*.json", "reports/*.json", "reports/*.png", "reports/*.md"]


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
        path = snapshot_download(repo_id, repo_type="model", revision=revision, allow_patterns=WEIGHT_PATTERNS)
    except Exception as error:  # offline, unknown repo, rate limit...: each has its own type; all mean "use local"
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
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                          if isinstance(v, (int, float)))
        lines.append(f"| {description.get('weights_file', description_path.stem)} | "
                     f"{description.get('architecture', '?')} | {shown} |")
    return "\n".join(lines) + "\n"


def push_weights(
    repo_id: str,
    weights_dir: str | Path = DEFAULT_WEIGHTS_DIR,
    token: str | None = None,
    private: bool | None = None,
) -> str:
    """Upload every weight file, its description and the training report to ``repo_id`` in one commit.

    Creates the model repo if needed. Returns the URL of the commit.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    weights_dir = Path(weights_dir)
    files = sorted({p for pattern in WEIGHT_PATTERNS for p in weights_dir.glob(pattern) if p.is_file()})
    if not any(p.suffix == ".safetensors" for p in files):
        raise WeightsError(f"no weights in {weights_dir} to push; create them with `{REGENERATE_HINT}`")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    operations = [CommitOperationAdd(p.relative_to(weights_dir).as_posix(), str(p)) for p in files]
    operations.append(CommitOperationAdd("README.md", _model_card(repo_id, weights_dir).encode()))
    commit = api.create_commit(
        repo_id, operations, commit_message=f"colorseg weights ({len(files)} files)", repo_type="model"
    )
    return commit.commit_url
