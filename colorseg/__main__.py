"""``python -m colorseg <command> [arguments]``: one entry point for the project's commands.

    python -m colorseg colorize IN_DIR OUT_DIR [--nets ...] [...]     # a folder of photos, each net
    python -m colorseg segment IN_DIR OUT_DIR [--task ...] [...]      # masks and cutouts, both heads
    python -m colorseg deploy-space OWNER/NAME [--private] [--weights-repo OWNER/NAME] [--dry-run]
    python -m colorseg evaluate colour|segment DATA_DIR [...]    # = python -m colorseg.evaluate
    python -m colorseg train [...]                               # = python train_all.py (from a checkout)

Each command parses its own arguments: ``python -m colorseg COMMAND --help``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Callable

from colorseg.paths import TRAIN_SCRIPT


def _colourize(argv: list[str]) -> int:
    from colorseg.batch_cli import colourize_main

    return colourize_main(argv)


def _segment(argv: list[str]) -> int:
    from colorseg.batch_cli import segment_main

    return segment_main(argv)


def _deploy_space(argv: list[str]) -> int:
    from colorseg.space_deploy import main

    return main(argv)


def _evaluate(argv: list[str]) -> int:
    import torch

    from colorseg.evaluate import main

    with torch.inference_mode():  # as `python -m colorseg.evaluate` runs it
        return main(argv)


def _train(argv: list[str]) -> int:
    if not TRAIN_SCRIPT.is_file():
        print(f"error: {TRAIN_SCRIPT} not found: `train` needs a checkout of the colorseg repository", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("train_all", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its __main__ block does not run: main() is called below
    program, sys.argv[0] = sys.argv[0], str(TRAIN_SCRIPT.name)  # argparse names the program after it
    try:
        return module.main(argv)
    finally:
        sys.argv[0] = program


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "colorize": (_colourize, "colourize every image in a folder (one PNG per net)"),
    "segment": (_segment, "segment every image in a folder (mask and cutout per head)"),
    "deploy-space": (_deploy_space, "create or update the Hugging Face Space of the app"),
    "evaluate": (_evaluate, "score the weights on a data folder (python -m colorseg.evaluate)"),
    "train": (_train, "regenerate weights/ and reports/ (python train_all.py)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m colorseg",
        description=__doc__.split("\n\n")[0],
        epilog="commands:\n" + "\n".join(f"  {name:<14}{text}" for name, (_, text) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=COMMANDS, metavar="COMMAND", help=", ".join(COMMANDS))
    # Only the command is parsed here; everything after it belongs to the command.
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    handler, _ = COMMANDS[args.command]
    return handler(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
