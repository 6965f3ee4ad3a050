"""The command line: ``python -m colorseg COMMAND [arguments]`` (or ``colorseg COMMAND``).

    python -m colorseg train [...]                               # = python train_all.py
    python -m colorseg evaluate colour|segment DATA_DIR [...]    # = python -m colorseg.evaluate
    python -m colorseg colorize IN_DIR OUT_DIR [--nets ...]      # a folder of photos, each net
    python -m colorseg segment IN_DIR OUT_DIR [--task ...]       # masks and cut-outs, both heads
    python -m colorseg deploy-space OWNER/NAME [--private] [--weights-repo OWNER/NAME] [--dry-run]

Each command parses its own arguments (``python -m colorseg COMMAND --help``); the same flag means
the same everywhere (``--weights-dir``, ``--device``, ``--threads``, ``--debug``). Library code raises
:class:`colorseg.errors.ColorsegError` and logs; only these entry points print messages and choose
exit statuses: 0 done, 2 bad data, weights or arguments, 130 Ctrl-C, 1 anything unforeseen (one
line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from colorseg.errors import ColorsegError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
# command -> (module whose main(argv) runs it, one line of help); modules load only when chosen.
COMMANDS = {
    "train": ("colorseg.cli.train", "regenerate weights/ and reports/ (python train_all.py)"),
    "evaluate": ("colorseg.cli.evaluate", "score the weights on a data folder (python -m colorseg.evaluate)"),
    "colorize": ("colorseg.cli.batch", "colourize every image in a folder (one PNG per net)"),
    "segment": ("colorseg.cli.batch", "segment every image in a folder (mask and cut-out per head)"),
    "deploy-space": ("colorseg.deploy.space", "create or update the Hugging Face Space of the app"),
}
ENTRY_POINTS = {"colorize": "colourize_main", "segment": "segment_main"}  # the others: main


def configure_logging() -> None:
    """Progress and notes as plain lines on stderr (stdout stays for results, e.g. evaluate's JSON)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)


def run_command(body: Callable[[], int], debug: bool, interrupted: str = "interrupted") -> int:
    """Run a command's ``body`` and turn what it raises into one line on stderr and an exit status."""
    configure_logging()
    try:
        return body()
    except KeyboardInterrupt:
        if debug:
            raise
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except ColorsegError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - one line, not a traceback, for anything unforeseen
        if debug:
            raise
        print(f"error: {type(error).__name__}: {error} (run again with --debug for the traceback)", file=sys.stderr)
        return 1


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
        return 0 if argv else EXIT_USAGE
    command = parser.parse_args(argv[:1]).command
    module = importlib.import_module(COMMANDS[command][0])
    return getattr(module, ENTRY_POINTS.get(command, "main"))(argv[1:])
