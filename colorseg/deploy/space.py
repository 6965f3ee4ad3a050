"""Deploy the app to a Hugging Face Space in one command, through huggingface_hub's upload API.

    python -m colorseg deploy-space OWNER/NAME [--private] [--weights-repo OWNER/NAME] [--dry-run]

A plain ``git push`` of this repository to a Space is refused: the Hub accepts binary files
(weights, screenshots, example photos) only through LFS/Xet, and this repository's history
holds them as ordinary git blobs. The upload API stores binaries through LFS/Xet itself, so
this command works from any checkout, with or without git-lfs.

What it does:

1. creates the Space if it is missing (Gradio SDK; the Space reads ``sdk_version`` from the
   front matter of the uploaded README.md, which must be there);
2. sets the Space variables the app reads (``COLORSEG_HUB_REPO`` with ``--weights-repo``);
3. uploads what the Space needs in one commit and removes files a previous deploy left there
   that are no longer part of it.

What is uploaded: in a git checkout, the tracked files (so nothing ``.gitignore`` excludes and
nothing untracked); elsewhere, every file under the repository root that ``.gitignore`` and the
built-in list below do not exclude. Never uploaded: local data, training runs, artifacts,
caches, tests, benchmarks, CI scripts and git's own files (``.gitattributes`` excepted).
``--dry-run`` prints those files, one path per line on stdout, with a summary on stderr, and
contacts nobody.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from colorseg.deploy.files import space_files  # which files (stdlib only too)
from colorseg.paths import REPO_ROOT  # stdlib only, like this module

HUB_REPO_ENV = "COLORSEG_HUB_REPO"  # read by colorseg.deploy.hub (kept literal: this module imports nothing heavy)
NO_TOKEN = "no Hugging Face token: run `hf auth login` (older huggingface_hub: `huggingface-cli login`) or set HF_TOKEN"


class DeployError(Exception):
    """A problem worth one line to the user (exit status 1, or 2 for usage problems)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------- the plan


def front_matter(readme: Path) -> dict[str, str]:
    """The top-level ``key: value`` pairs of a README's YAML front matter (quotes stripped)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return {}
    values = {}
    for line in match.group(1).splitlines():
        key, colon, value = line.partition(":")
        if colon and key and not key[0].isspace():
            values[key.strip()] = value.strip().strip("\"'")
    return values


def human_size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# ----------------------------------------------------------------------------- the Hub


def network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the Hub could not be reached or refused": one line, no traceback.

    HfHubHTTPError and requests' errors are OSErrors; httpx's (huggingface_hub >= 1 uses httpx,
    vendored as httpx2 in recent releases) are not.
    """
    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx", "HTTPError"), ("httpx2", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def validate_repo_id(repo_id: str, what: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", repo_id or ""):
        raise DeployError(f"{what} must look like OWNER/NAME, not {repo_id!r}", status=2)


@dataclass
class Plan:
    """Everything a deploy would do, computed without contacting the Hub."""

    repo_id: str
    root: Path
    files: list[str]
    sizes: dict[str, int]
    variables: dict[str, str] = field(default_factory=dict)
    private: bool = False

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())


def make_plan(
    repo_id: str, root: str | Path = REPO_ROOT, weights_repo: str | None = None, private: bool = False
) -> Plan:
    validate_repo_id(repo_id, "the Space")
    root = Path(root)
    files = space_files(root)
    settings = front_matter(root / "README.md")
    if "README.md" not in files or settings.get("sdk") != "gradio" or not settings.get("sdk_version"):
        raise DeployError(
            f"{root / 'README.md'} needs front matter with `sdk: gradio` and `sdk_version:`: the Space reads its"
            " configuration from there",
            status=2,
        )
    app_file = settings.get("app_file", "app.py")
    if app_file not in files:
        raise DeployError(f"the Space's app_file {app_file} is not among the files to upload", status=2)
    variables = {}
    if weights_repo:
        validate_repo_id(weights_repo, "--weights-repo")
        variables[HUB_REPO_ENV] = weights_repo
    sizes = {path: (root / path).stat().st_size for path in files}
    return Plan(repo_id, root, files, sizes, variables, private)


def _commit_message(root: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "Deploy colorseg"
    return f"Deploy colorseg {head}" + (" with uncommitted changes" if dirty else "")


def deploy(plan: Plan, api: Any, log: Callable[[str], None]) -> str:
    """Create the Space if needed, set its variables, upload ``plan.files`` in one commit
    (removing files no longer part of it). Returns the Space's URL."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if api.repo_exists(plan.repo_id, repo_type="space"):
        log(f"Space {plan.repo_id} exists" + ("; --private does not change an existing Space" if plan.private else ""))
    else:
        api.create_repo(plan.repo_id, repo_type="space", space_sdk="gradio", private=plan.private, exist_ok=True)
        log(f"created the {'private' if plan.private else 'public'} Space {plan.repo_id} (Gradio SDK)")
    for key, value in plan.variables.items():
        api.add_space_variable(plan.repo_id, key, value, description="set by python -m colorseg deploy-space")
        log(f"Space variable {key}={value}")
    wanted = set(plan.files)
    stale = sorted(set(api.list_repo_files(plan.repo_id, repo_type="space")) - wanted)
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(plan.root / path)) for path in plan.files]
    operations += [CommitOperationDelete(path_in_repo=path) for path in stale]
    if stale:
        log(f"removing {len(stale)} file(s) no longer part of the Space: {', '.join(stale)}")
    log(f"uploading {len(plan.files)} files, {human_size(plan.total_size)}")
    api.create_commit(plan.repo_id, operations, commit_message=_commit_message(plan.root), repo_type="space")
    return f"https://huggingface.co/spaces/{plan.repo_id}"


def get_token() -> str | None:
    from huggingface_hub import get_token as hub_token

    return hub_token()


def make_api(token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m colorseg deploy-space",
        description="Create (if needed) and upload the Hugging Face Space of this app.",
    )
    parser.add_argument("space", metavar="OWNER/NAME", help="the Space, e.g. you/colorseg")
    parser.add_argument("--private", action="store_true", help="create the Space private (new Spaces only)")
    parser.add_argument(
        "--weights-repo",
        metavar="OWNER/NAME",
        help=f"Hub model repo the Space loads weights from (sets the Space variable {HUB_REPO_ENV}); "
        "weights/ is uploaded as well and stays the fallback",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the files that would be uploaded, one per line, and upload nothing",
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, file=stderr, flush=True)

    try:
        plan = make_plan(args.space, args.root, args.weights_repo, args.private)
        if args.dry_run:
            for path in plan.files:
                print(path, file=stdout)
            settings = ", ".join(f"{key}={value}" for key, value in plan.variables.items()) or "none"
            log(
                f"{len(plan.files)} files, {human_size(plan.total_size)} (dry run: nothing uploaded to "
                f"spaces/{plan.repo_id}; Space variables: {settings})"
            )
            return 0
        token = get_token()
        if not token:
            raise DeployError(NO_TOKEN, status=2)
        url = deploy(plan, make_api(token), log)
    except DeployError as error:
        log(f"error: {error}")
        return error.status
    except network_errors() as error:
        log(f"error: could not deploy to the Hub ({_one_line(error)})")
        return 1
    except ValueError as error:  # huggingface_hub's HFValidationError and friends
        log(f"error: {_one_line(error)}")
        return 2
    print(url, file=stdout)
    log(f"deployed: {url} (the Space builds and restarts on its own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
