"""The project's one error type for bad input files.

Every reader (images, masks, keypoint JSON/``.npy``, scans, point clouds, meshes, checkpoints, data
lists) raises a subclass of :class:`BadInputError` whose message starts with the file it read and
says what is wrong with it. Batch tools report such an error as that item's one line and go on;
anything else raised inside an item is unexpected and reported the same way, with its type
(:mod:`utils.batch`).
"""

from __future__ import annotations


class BadInputError(ValueError):
    """A bad input file; the message names the file and the problem (``"<file>: <problem>"``)."""
