"""`python -m colorseg deploy-space`: which files a Space gets, what the (monkeypatched) Hub is
asked to do, one-line errors; and the app started the way a Space starts it."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from app_process import running_app
from PIL import Image
from support import save_photo

from colorseg.__main__ import main as colorseg_main
from colorseg.deploy import files as space_files
from colorseg.deploy import space as space_deploy

REPO = Path(__file__).resolve().parents[2]
NEVER_UPLOADED = ("data/", "runs/", "artifacts/", "tests/", "benchmarks/", ".ci/", ".git/")


def _is_git_checkout(root: Path) -> bool:
    return space_files._git_tracked(root) is not None


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = space_deploy.main(argv, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- which files


def test_the_repository_uploads_what_a_space_needs():
    files = space_files.space_files(REPO)
    for needed in (
        "app.py",
        "README.md",
        "requirements.txt",
        ".gitattributes",
        "colorseg/__init__.py",
        "colorseg/deploy/hub.py",
        "weights/seg_body.safetensors",
        "weights/palette.json",
        "examples/cameraman_greyscale.jpg",
        "reports/training_report.json",
        "docs/screenshots/colourize_tab_desktop.png",
        "reports/replay_colour_UNet.json",  # the Training replay tab plays on the Space too
        "reports/replay_colour_UNet_argmax.png",
        "reports/replay_seg_objects.json",
    ):
        assert needed in files, needed
    assert not [f for f in files if f.startswith(NEVER_UPLOADED) or "__pycache__" in f or f.endswith(".pyc")]
    assert not [f for f in files if f.startswith(".git") and f != ".gitattributes"]
    assert "requirements-dev.txt" not in files


def _write(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")


SPACE_TREE = (
    "app.py",
    "requirements.txt",
    ".gitattributes",
    "colorseg/__init__.py",
    "weights/palette.safetensors",
    "examples/cat.jpg",
    "reports/training_report.json",
    "docs/screenshots/a.png",
)
LOCAL_ONLY = (
    "data/cifar/x.png",
    "runs/a/weights/x.safetensors",
    "artifacts/out.png",
    "tests/test_x.py",
    "benchmarks/b.py",
    ".ci/run",
    "colorseg/__pycache__/hub.cpython-311.pyc",
    ".pytest_cache/v/x",
    "notes.tmp",
    "requirements-dev.txt",
    ".gitignore",
    ".whl/torch.whl",
    "weights/x.tmp",
)


def _space_tree(root: Path) -> Path:
    root.mkdir()
    (root / "README.md").write_text("---\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n# x\n")
    _write(root, *SPACE_TREE, *LOCAL_ONLY)
    (root / ".gitignore").write_text("__pycache__/\n*.pyc\n/runs/\n/data/\n/artifacts/\n*.tmp\n.whl/\n")
    return root


def test_outside_git_the_walk_honours_gitignore_and_the_exclude_list(tmp_path):
    root = _space_tree(tmp_path / "plain")
    assert space_files.space_files(root) == sorted(["README.md", *SPACE_TREE])


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_a_git_checkout_only_tracked_files_are_uploaded(tmp_path):
    root = _space_tree(tmp_path / "checkout")
    subprocess.run(["git", "-C", str(root), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)  # .gitignore keeps the ignored ones out
    subprocess.run(["git", "-C", str(root), "add", "-f", "runs/a/weights/x.safetensors"], check=True)
    _write(root, "scratch.py")  # untracked, not ignored: still not uploaded
    (root / "examples/cat.jpg").unlink()  # tracked but deleted: nothing to upload
    expected = sorted(["README.md", *SPACE_TREE])
    expected.remove("examples/cat.jpg")
    assert space_files.space_files(root) == expected


def test_front_matter():
    settings = space_deploy.front_matter(REPO / "README.md")
    assert settings["sdk"] == "gradio" and settings["app_file"] == "app.py"
    pin = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("gradio==")]
    assert pin == [f"gradio=={settings['sdk_version']}"], "the Space installs the sdk_version of README's front matter"


@pytest.mark.skipif(not _is_git_checkout(REPO), reason="not a git checkout")
def test_a_virtual_environment_in_the_checkout_is_ignored():
    # python -m venv .venv in the checkout: never committed, so never deployed.
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", ".venv/lib/site.py"], check=False)
    assert ignored.returncode == 0


def test_readme_states_no_stale_file_count():
    """README may say how many files a Space gets only if that is what the dry run counts."""
    import re

    files = space_files.space_files(REPO)
    for count in re.findall(r"\b(\d+) files, [\d.]+ MB", (REPO / "README.md").read_text()):
        assert int(count) == len(files), f"README says {count} files; the dry run lists {len(files)}"


# ----------------------------------------------------------------------------- dry run


def test_dry_run_prints_one_path_per_line_and_contacts_nobody(monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("a dry run must not contact the Hub")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_hub)
    monkeypatch.setattr(huggingface_hub, "get_token", no_hub)
    status, out, err = run_main(["you/colorseg", "--dry-run", "--weights-repo", "you/colorseg-weights"])
    assert status == 0
    assert out.splitlines() == space_files.space_files(REPO)
    assert "app.py" in out.splitlines() and "weights/seg_body.safetensors" in out.splitlines()
    total = sum((REPO / path).stat().st_size for path in out.splitlines())
    assert err.startswith(f"{len(out.splitlines())} files, {total / 1e6:.1f} MB")
    assert "COLORSEG_HUB_REPO=you/colorseg-weights" in err


def test_python_dash_m_colorseg_dispatches_deploy_space():
    result = subprocess.run(
        [sys.executable, "-m", "colorseg", "deploy-space", "you/colorseg", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert {"app.py", "README.md", "requirements.txt", "colorseg/__init__.py"} <= set(lines)
    assert any(line.startswith("weights/") for line in lines) and any(line.startswith("examples/") for line in lines)
    assert not [line for line in lines if line.startswith(NEVER_UPLOADED)]
    assert len(result.stderr.strip().splitlines()) == 1 and " files, " in result.stderr


def test_the_dispatcher_lists_its_commands(capsys):
    assert colorseg_main([]) == 2
    help_text = capsys.readouterr().out
    assert all(command in help_text for command in ("deploy-space", "evaluate", "train"))
    with pytest.raises(SystemExit):
        colorseg_main(["no-such-command"])


@pytest.mark.parametrize(("command", "option"), [("evaluate", "--split"), ("train", "--only")])
def test_the_dispatcher_forwards_to_evaluate_and_train(capsys, command, option):
    with pytest.raises(SystemExit) as exit_info:
        colorseg_main([command, "--help"])
    assert exit_info.value.code == 0 and option in capsys.readouterr().out


# ----------------------------------------------------------------------------- deploy, monkeypatched Hub


class FakeHfApi:
    """Records what deploy-space asks of huggingface_hub.HfApi."""

    instances: list[FakeHfApi] = []
    existing: dict[str, list[str]] = {}  # Space id -> files already there
    fail_with: BaseException | None = None

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls: list[tuple[str, tuple, dict]] = []
        FakeHfApi.instances.append(self)

    def _record(self, name, *args, **kwargs):
        if FakeHfApi.fail_with is not None:
            raise FakeHfApi.fail_with
        self.calls.append((name, args, kwargs))

    def repo_exists(self, repo_id, repo_type=None, **kwargs):
        self._record("repo_exists", repo_id, repo_type=repo_type)
        return repo_id in FakeHfApi.existing

    def create_repo(self, repo_id, **kwargs):
        self._record("create_repo", repo_id, **kwargs)
        FakeHfApi.existing.setdefault(repo_id, [".gitattributes", "README.md"])

    def add_space_variable(self, repo_id, key, value, **kwargs):
        self._record("add_space_variable", repo_id, key, value, **kwargs)

    def list_repo_files(self, repo_id, repo_type=None, **kwargs):
        self._record("list_repo_files", repo_id, repo_type=repo_type)
        return list(FakeHfApi.existing[repo_id])

    def create_commit(self, repo_id, operations, **kwargs):
        operations = list(operations)
        self._record("create_commit", repo_id, operations, **kwargs)
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/spaces/{repo_id}/commit/0",
            commit_message="",
            commit_description="",
            oid="0" * 40,
        )

    def called(self, name):
        return [(args, kwargs) for call, args, kwargs in self.calls if call == name]


@pytest.fixture
def fake_hub(monkeypatch):
    FakeHfApi.instances, FakeHfApi.existing, FakeHfApi.fail_with = [], {}, None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    return FakeHfApi


def test_deploy_creates_the_space_sets_variables_and_uploads_the_files(fake_hub):
    status, out, err = run_main(["you/colorseg", "--private", "--weights-repo", "you/colorseg-weights"])
    assert status == 0, err
    assert out.strip() == "https://huggingface.co/spaces/you/colorseg"
    [api] = fake_hub.instances
    assert api.token == "hf_test_token"
    [(args, kwargs)] = api.called("create_repo")
    assert args == ("you/colorseg",)
    assert kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio" and kwargs["private"] is True
    [(args, _)] = api.called("add_space_variable")
    assert args == ("you/colorseg", "COLORSEG_HUB_REPO", "you/colorseg-weights")
    [(args, kwargs)] = api.called("create_commit")
    assert kwargs["repo_type"] == "space" and kwargs["commit_message"].startswith("Deploy colorseg")
    operations = args[1]
    added = [op for op in operations if isinstance(op, huggingface_hub.CommitOperationAdd)]
    assert [op.path_in_repo for op in added] == space_files.space_files(REPO)
    assert all(Path(op.path_or_fileobj) == REPO / op.path_in_repo for op in added)
    assert not [op for op in operations if isinstance(op, huggingface_hub.CommitOperationDelete)]
    # The variable is set before the upload, so the first build already reads the weights repo.
    names = [name for name, _, _ in api.calls]
    assert names.index("add_space_variable") < names.index("create_commit")


def test_redeploy_keeps_the_space_and_removes_stale_files(fake_hub):
    fake_hub.existing["you/colorseg"] = ["README.md", "app.py", "colorseg/old_module.py", "tests/test_old.py"]
    status, _, err = run_main(["you/colorseg"])
    assert status == 0, err
    [api] = fake_hub.instances
    assert not api.called("create_repo") and not api.called("add_space_variable")
    [(args, _)] = api.called("create_commit")
    deleted = [op.path_in_repo for op in args[1] if isinstance(op, huggingface_hub.CommitOperationDelete)]
    assert deleted == ["colorseg/old_module.py", "tests/test_old.py"]
    assert "removing 2 file(s)" in err


def test_no_token_is_one_line(monkeypatch, fake_hub):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    status, out, err = run_main(["you/colorseg"])
    assert status == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {space_deploy.NO_TOKEN}"]
    assert "HF_TOKEN" in err and "login" in err
    assert not fake_hub.instances


def _network_failures():
    import requests

    failures = [
        requests.ConnectionError("Failed to resolve 'huggingface.co'"),
        OSError("Network is unreachable"),
    ]
    try:
        import httpx

        failures.append(httpx.ConnectError("[Errno -2] Name or service not known"))
    except ImportError:
        pass
    return failures


@pytest.mark.parametrize("error", _network_failures(), ids=lambda error: type(error).__name__)
def test_network_errors_are_one_line(fake_hub, error):
    fake_hub.fail_with = error
    status, out, err = run_main(["you/colorseg"])
    assert status == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: could not deploy to the Hub")
    assert "Traceback" not in err


def test_hub_http_errors_are_one_line(fake_hub):
    from huggingface_hub.errors import HfHubHTTPError

    try:  # the HTTP library huggingface_hub builds its errors from
        import httpx2 as http
    except ImportError:
        import httpx as http
    response = http.Response(403, request=http.Request("POST", "https://huggingface.co/api/repos/create"))
    fake_hub.fail_with = HfHubHTTPError("403 Forbidden: you cannot create a Space in this namespace", response=response)
    status, _, err = run_main(["someone-else/colorseg"])
    assert status == 1 and len(err.strip().splitlines()) == 1 and "403 Forbidden" in err


def test_bad_repo_ids_are_refused_before_anything_else(fake_hub):
    assert run_main(["colorseg"])[0] == 2
    assert run_main(["you/colorseg", "--weights-repo", "no slash"])[0] == 2
    assert not fake_hub.instances


# ----------------------------------------------------------------------------- the Space starting


@pytest.fixture(scope="module")
def space_copy(tmp_path_factory):
    """Exactly the files deploy-space uploads, in a fresh folder: the Space's /home/user/app."""
    root = tmp_path_factory.mktemp("space") / "app"
    for path in space_files.space_files(REPO):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, root / path)
    return root


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_the_space_starts_and_answers_both_endpoints(space_copy, tmp_path):
    """As on a Space: CPU, 0.0.0.0, weights named by COLORSEG_HUB_REPO but the Hub out of reach
    (so the local weights/ fallback), no local data, writable only its temporary folders. The
    uploaded files alone must be enough, and the app must write nothing into its own folder."""
    from gradio_client import Client, handle_file

    temp = tmp_path / "temp"
    env = {
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_TEMP_DIR": str(temp / "gradio"),
        "HOME": str(temp / "home"),
        "HF_HOME": str(temp / "hf"),
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(temp / "cache"),
        "MPLCONFIGDIR": str(temp / "matplotlib"),
        "TORCH_HOME": str(temp / "torch"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLORSEG_HUB_REPO": "you/colorseg-weights",
        "COLORSEG_DEVICE": "cpu",
        "COLORSEG_DATA": str(temp / "no-data"),
        "CUDA_VISIBLE_DEVICES": "",
    }
    before = _listing(space_copy)
    photo = save_photo(tmp_path / "photo.png", 96, 64)
    with running_app(space_copy, env, tmp_path / "app.log") as url:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "downloads"))
        gallery, *_ = client.predict(handle_file(str(photo)), api_name="/colorize")
        assert [item["caption"] for item in gallery][1:4] == ["PoolUpsampleNet", "ConvTransposeNet", "UNet"]
        assert Image.open(gallery[-1]["image"]).size == (96, 64)
        _, _, mask_ce, mask_iou, _, scores, _ = client.predict(handle_file(str(photo)), api_name="/segment")
        assert np.asarray(Image.open(mask_ce)).shape[:2] == (64, 96)
        assert [row[0] for row in scores["data"]] == ["Cross-entropy head", "Soft-IoU head"]
    assert _listing(space_copy) == before, "the app wrote into its own folder"


def test_examples_are_not_decoded_at_start_up(monkeypatch, tmp_path):
    """Start-up stays fast: example photos are handed to gradio as paths and decoded only when
    clicked, never at build time."""
    from functools import partial

    import PIL.Image
    from app_support import load_fake_segmenter, make_all_weights

    from colorseg.app.demo import build_demo
    from colorseg.app.examples import sample_photos
    from colorseg.app.models import load_models

    opened = []
    original = PIL.Image.open

    def recording_open(fp, *args, **kwargs):
        opened.append(str(fp))
        return original(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", recording_open)
    build_demo(
        make_all_weights(tmp_path / "weights"),
        device="cpu",
        loader=partial(load_models, load_segmenter=load_fake_segmenter),
    )
    examples = {str(path) for path in sample_photos()}
    assert examples and not examples & set(opened)
