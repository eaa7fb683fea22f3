"""The command lines' console: logging levels, plain warnings, MLflow kept quiet, progress on long steps.

Used by ``python -m training`` / ``lead-train`` and ``serve.py`` / ``lead-serve`` from their
``main``; importing it does nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from registry import MLFLOW_ADVICE

#: Warnings of MLflow's that the user cannot act on (about how this project logs its model).
MLFLOW_NOISE = MLFLOW_ADVICE  # one list: registry.loading drops the same advice while a model loads
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

log = logging.getLogger("lead_scoring")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the example epilogs kept as written and every real default shown."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and not isinstance(action, (argparse._VersionAction,
                                                                     argparse._StoreFalseAction))):
            text += " (default: %(default)s)"
        return text


def package_version() -> str:
    try:
        return version("lead-conversion")
    except PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown"


def add_command(commands, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose help is ``help_text`` and whose ``--help`` ends with one example that runs as written."""
    return commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                               formatter_class=HelpFormatter, epilog=f"example:\n  {example}")


def add_common_arguments(parser: argparse.ArgumentParser, *, tracking: bool = True, experiment: bool = True) -> None:
    """``--quiet``/``--verbose`` and, for commands that use MLflow, ``--tracking-uri`` and ``--experiment``."""
    chatter = parser.add_mutually_exclusive_group()
    chatter.add_argument("-q", "--quiet", action="store_true", help="print only warnings, errors and the result")
    chatter.add_argument("-v", "--verbose", action="count", default=0,
                         help="more detail: -v shows MLflow's own messages, -vv debug output")
    if tracking:
        parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                                   "sqlite:///mlflow.db in the current folder)")
    if tracking and experiment:
        parser.add_argument("--experiment", help="MLflow experiment to log runs to (default: $MLFLOW_EXPERIMENT_NAME, "
                                                 "else the model's name)")


def configure(args) -> None:
    """Console set-up from the parsed ``--quiet``/``--verbose``: our log lines plain, MLflow's behind -v."""
    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", False)
    level = logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO
    log.setLevel(level)
    if not any(getattr(handler, "_lead_scoring", False) for handler in log.handlers):
        handler = _TqdmHandler()
        handler._lead_scoring = True
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    # Read by MLflow when it is imported; a value the user set wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for pattern in MLFLOW_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
    # Every warning one plain line, on both command lines; not where a caller records them (pytest.warns,
    # catch_warnings(record=True) swaps the warnings module's private _showwarnmsg_impl for a list's append).
    recording = getattr(getattr(warnings, "_showwarnmsg_impl", None), "__module__", "warnings") != "warnings"
    if warnings.showwarning is getattr(warnings, "_showwarning_orig", None) and not recording:
        warnings.showwarning = show_warning


def error_text(error: Exception) -> str:
    """An error as the one line a command prints: ``file: reason`` for files, else the message."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings reach the user as one plain line (no colour codes, no source location).

    MLflow's advice about how this project logs its model is dropped here as well as by the
    filters: MLflow re-enables its own warnings inside some calls (``simplefilter("once")``).
    """
    text = _ANSI.sub("", str(message))
    if log.getEffectiveLevel() > logging.DEBUG and any(re.match(pattern, text) for pattern in MLFLOW_NOISE):
        return
    log.warning("WARNING: %s", text)


@contextmanager
def step(description: str):
    """Time a long step: a live elapsed-time line on a terminal, then one log line when done.

    The line is tqdm's, refreshed twice a second from a helper thread, so it moves while
    a model fits; away from a terminal (CI, files) tqdm draws nothing.
    """
    from tqdm import tqdm

    quiet = log.getEffectiveLevel() > logging.INFO
    bar = tqdm(desc=description, bar_format="{desc}: {elapsed}", disable=True if quiet else None, file=sys.stderr,
               leave=False)
    done = threading.Event()

    def tick():
        while not done.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        bar.close()
    log.info("%s: done in %.1f s", description, time.perf_counter() - started)


class _TqdmHandler(logging.Handler):
    """Log lines to stderr through tqdm, so a live progress line is not torn apart by them."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)
