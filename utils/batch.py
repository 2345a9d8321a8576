"""Per-item isolation for batch tools: one bad item is one line, never the end of the run.

Every batch tool (``test_02_model.py``, ``test_03_poisson.py``, ``evaluate.py``,
``render/render.py``, ``render/render_keypoint.py``, ``render.make_training_set``) runs each item
through
:func:`run_item`:

* a :class:`~utils.errors.BadInputError` (the project's readers) is reported by its message,
  which already names the file;
* any other exception is unexpected: it is reported as ``<item>: <ExceptionType>: <message>``;
* with ``debug`` (the tools' ``--debug``) the traceback follows;
* ``KeyboardInterrupt`` and ``SystemExit`` end the run as usual.

The item's own code writes its outputs atomically and only when it has all of them
(:func:`utils.fileio.atomic_write_bytes`), so a failed item leaves nothing under its name. The tool
prints the failed items' lines at the end and exits 1 when there is any (:func:`exit_on_failures`).
Errors that concern the whole run (arguments, checkpoint, output folder) are raised before the
first item.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import TypeVar

from utils.errors import BadInputError

T = TypeVar("T")

log = logging.getLogger(__name__)


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """``--debug`` / ``-v``: show the traceback of each failed item."""
    parser.add_argument(
        "--debug",
        "-v",
        action="store_true",
        help="show the traceback of each failed item (default: one line per failure)",
    )


def failure_line(item: str | os.PathLike, exc: BaseException) -> str:
    """One line naming the item and what went wrong.

    A :class:`BadInputError` whose message starts with a file name (``"<file>: <problem>"``, the
    readers' convention: the text before the first ``": "`` holds a ``/`` or a ``.``) keeps its
    first line, since that file may be the item's keypoints or mask rather than the item;
    anything else becomes ``<item>: <first line>`` for a BadInputError and
    ``<item>: <ExceptionType>: <first line>`` for any other exception.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    name = os.fspath(item)
    if isinstance(exc, BadInputError) and first:
        head = first.split(": ", 1)[0] if ": " in first else ""
        return first if ("/" in head or "." in head or head == name) else f"{name}: {first}"
    kind = type(exc).__name__
    return f"{name}: {kind}: {first}" if first else f"{name}: {kind}"


def run_item(
    item: str | os.PathLike,
    work: Callable[[], T],
    failures: list[tuple[str, str]],
    debug: bool = False,
    logger: logging.Logger | None = None,
) -> T | None:
    """Run ``work()`` for one item; on an exception log one line, record it and return None.

    Args:
        item: the item's file or name (the line's subject).
        work: the item's whole job (read, compute, write).
        failures: ``(item, line)`` pairs are appended here.
        debug: log the traceback too.
        logger: where to log (default: this module's).
    Returns:
        ``work()``'s value, or None when it raised.
    """
    logger = logger or log
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - one item's failure, whatever it is, ends only that item
        line = failure_line(item, exc)
        logger.error("FAILED %s", line)
        if debug:
            logger.error("%s", "".join(traceback.format_exception(exc)).rstrip())
        failures.append((os.fspath(item), line))
        return None


def print_failures(lines: Iterable[str]) -> int:
    """Print ``FAILED <line>`` on stderr for each failed item's line (:func:`failure_line`);
    returns how many."""
    count = 0
    for line in lines:
        print(f"FAILED {line}", file=sys.stderr)
        count += 1
    return count


def exit_on_failures(lines: Iterable[str]) -> None:
    """A batch tool's end: :func:`print_failures`, then exit status 1 if any item failed."""
    if print_failures(lines):
        sys.exit(1)
