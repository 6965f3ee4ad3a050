"""python -m colorseg colorize / segment: the app's inference over a folder, failures listed,
nothing overwritten without --overwrite, exit status 0 / 1 / 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import make_colour_weights, read_picture, save_photo
from support import save_tiny_segmentation_weights as _save_tiny_weights

from colorseg.__main__ import main
from colorseg.colour import inference as c
from colorseg.image_io import load_image
from colorseg.segmentation.inference import load_segmenter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def colour_weights(tmp_path_factory) -> Path:
    return make_colour_weights(tmp_path_factory.mktemp("colour_weights"))


@pytest.fixture(scope="module")
def seg_weights(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("seg_weights")
    _save_tiny_weights(directory)
    return directory


@pytest.fixture
def in_dir(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    save_photo(folder / "wide.png", width=64, height=48)
    save_photo(folder / "small.jpg", width=20, height=36, quality=95)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / ".hidden").write_text("ignored")
    (folder / "sub").mkdir()
    return folder


def test_colorize_folder(colour_weights, in_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "colorize",
        str(in_dir),
        str(out),
        "--weights-dir",
        str(colour_weights),
        "--nets",
        "UNet",
        "PoolUpsampleNet",
        "--working-size",
        "32",
        "--decoding",
        "argmax",
    ]
    assert main(argv) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "small_PoolUpsampleNet.png",
        "small_UNet.png",
        "wide_PoolUpsampleNet.png",
        "wide_UNet.png",
    ]
    models = c.load_colourizers(colour_weights)
    for stem in ("wide", "small"):
        rgb = load_image(next(in_dir.glob(f"{stem}.*"))).rgb
        expected = c.colourize(models, c.greyscale(rgb), ["UNet"], 32, "argmax", c.DEFAULT_TEMPERATURE)["UNet"].rgb
        produced = read_picture(out / f"{stem}_UNet.png")
        assert np.array_equal(produced, expected), "the app's inference, at the input's size"
    err = capsys.readouterr().err
    assert "broken.png" in err and "4 file(s) written" in err and "Traceback" not in err


def test_existing_outputs_are_kept_without_overwrite(colour_weights, in_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["colorize", str(in_dir), str(out), "--weights-dir", str(colour_weights), "--nets", "UNet"]
    (in_dir / "broken.png").unlink()
    assert main(argv) == 0
    target = out / "wide_UNet.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(target)
    capsys.readouterr()
    assert main(argv) == 0
    assert read_picture(target).shape == (2, 2, 3), "not overwritten"
    assert "kept existing wide_UNet.png" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert read_picture(target).shape == (48, 64, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--weights-dir", "MISSING"], "error: missing weight description"),
        (["--nets", "ConvTransposeNet"], "error: "),
    ],
)
def test_weights_errors_are_one_line_and_status_2(tmp_path, in_dir, capsys, extra, message):
    weights = make_colour_weights(tmp_path / "w", names=("UNet",))
    extra = [str(tmp_path / e) if e == "MISSING" else e for e in extra]
    argv = ["colorize", str(in_dir), str(tmp_path / "out"), "--weights-dir", str(weights), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing is created when nothing can be written"


def test_usage_errors_exit_2(colour_weights, in_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["colorize", str(in_dir), str(tmp_path / "out"), "--working-size", "8"])
    assert exit_info.value.code == 2
    nowhere = ["colorize", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--weights-dir", str(colour_weights)]
    assert main(nowhere) == 2
    assert "does not exist" in capsys.readouterr().err


def test_segment_folder(seg_weights, in_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(in_dir), str(out), "--weights-dir", str(seg_weights), "--task", "horses"]) == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{stem}_{head}_{what}.png"
        for stem in ("wide", "small")
        for head in ("cross_entropy", "soft_iou")
        for what in ("mask", "cutout")
    )
    segmenter = load_segmenter(seg_weights)
    rgb = load_image(in_dir / "wide.png").rgb
    result = segmenter.predict(rgb, task="horses")
    for head in ("cross_entropy", "soft_iou"):
        mask = getattr(result, f"mask_{head}")
        assert np.array_equal(read_picture(out / f"wide_{head}_mask.png"), mask.astype(np.uint8) * 255)
        cutout = read_picture(out / f"wide_{head}_cutout.png")
        assert cutout.shape == (48, 64, 4) and np.array_equal(cutout[..., 3], mask.astype(np.uint8) * 255)
    assert "broken.png" in capsys.readouterr().err
    assert main(["segment", str(in_dir), str(out), "--weights-dir", str(seg_weights), "--task", "flowers"]) == 2
    assert "no heads for task 'flowers'" in capsys.readouterr().err


# ---------------------------------------------------------------- faults, injected (root can write anywhere)


def _colorize(in_dir: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["colorize", str(in_dir), str(out), "--weights-dir", str(weights), "--nets", "UNet", *extra]


def test_an_output_folder_that_cannot_be_written_is_one_line(colour_weights, in_dir, tmp_path, capsys, monkeypatch):
    from colorseg.cli import batch as batch_cli

    def refused(array, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(batch_cli, "save_png", refused)
    assert main(_colorize(in_dir, tmp_path / "out", colour_weights)) == 2
    err = capsys.readouterr().err
    assert "error: cannot write small_UNet.png" in err and "(Permission denied); stopped" in err
    assert "Traceback" not in err and "wide" not in err, "the run stops at the first write that fails"


def test_output_folder_equal_to_input_folder_leaves_earlier_outputs_alone(colour_weights, in_dir, capsys):
    (in_dir / "broken.png").unlink()
    assert main(_colorize(in_dir, in_dir, colour_weights)) == 0
    first = sorted(p.name for p in in_dir.iterdir() if p.is_file())
    assert first == [".hidden", "small.jpg", "small_UNet.png", "wide.png", "wide_UNet.png"]
    # Again, and with another net: the results of the first run are not photos to colourize.
    assert main(_colorize(in_dir, in_dir, colour_weights)) == 0
    assert main(_colorize(in_dir, in_dir, colour_weights, "--nets", "PoolUpsampleNet")) == 0
    names = sorted(p.name for p in in_dir.iterdir() if p.is_file())
    assert names == sorted([*first, "small_PoolUpsampleNet.png", "wide_PoolUpsampleNet.png"])
    assert "earlier output(s) in the folder left out as inputs" in capsys.readouterr().err


def test_an_unreadable_input_is_not_called_damaged(colour_weights, in_dir, tmp_path, capsys, monkeypatch):
    from colorseg import image_io

    opened = image_io.Image.open

    def guarded(source, *args, **kwargs):
        if str(source).endswith("small.jpg"):
            raise PermissionError(13, "Permission denied", str(source))
        return opened(source, *args, **kwargs)

    monkeypatch.setattr(image_io.Image, "open", guarded)
    assert main(_colorize(in_dir, tmp_path / "out", colour_weights)) == 1
    err = capsys.readouterr().err
    assert "small.jpg: The file cannot be read (Permission denied)." in err
    assert "damaged" not in err.split("small.jpg:")[1].splitlines()[0]


def test_ctrl_c_ends_in_one_line(colour_weights, in_dir, tmp_path, capsys, monkeypatch):
    from colorseg.cli import batch as batch_cli

    written, save_png = [], batch_cli.save_png

    def interrupted_after_one(array, path):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return save_png(array, path)

    monkeypatch.setattr(batch_cli, "save_png", interrupted_after_one)
    out = tmp_path / "out"
    assert main(_colorize(in_dir, out, colour_weights)) == 130
    err = capsys.readouterr().err
    assert "1 file(s) written" in err and "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["small_UNet.png"], "no partial file"
    # While the weights load: nothing written, one line.
    monkeypatch.setattr(c, "load_colourizers", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(_colorize(in_dir, tmp_path / "out2", colour_weights)) == 130
    assert capsys.readouterr().err == "interrupted: nothing was written\n"


def test_a_failed_input_does_not_take_its_namesake_with_it(colour_weights, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a picture")
    save_photo(folder / "a.png", width=32, height=24)
    out = tmp_path / "out"
    assert main(_colorize(folder, out, colour_weights)) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_UNet.png"]
    err = capsys.readouterr().err
    assert "a.jpg: This file is not an image" in err and "a.png" not in err


@pytest.mark.parametrize("command", ["colorize", "segment"])
def test_help_states_the_size_cap(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "4096 px" in " ".join(capsys.readouterr().out.split())
