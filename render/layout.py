"""File and view names of the rendered training data (facts sheet §6.1, §6.2).

::

    <data_path>/PERS/COLOR/SHADED/<view>/<item>_front.png      lit network input (8-bit BGR)
    <data_path>/PERS/COLOR/NOSHADING/<view>/<item>_{front,back}.png  unlit colour (8-bit BGR)
    <data_path>/PERS/DEPTH/<view>/<item>_{front,back}.png        16-bit range (utils.camera)
    <data_path>/PERS/keypoint/<view>/<item>_front.npy           (31, 3) rows (u, v, c)
    <data_path>/PERS/keypoint_sample/<view>/<item>.png          keypoint overlay
    <data_path>/ORTH/...                                         orthographic option
    <data_path>/list/<DS>_all.txt                                7 lines per item (one per yaw)

with ``<view> = <DS>_0_y_<yaw>_x`` (e.g. ``RP_0_y_-30_x``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_YAWS = tuple(range(-30, 31, 10))
PROJECTIONS = ("PERS", "ORTH")


def view_name(data_name: str, yaw: int) -> str:
    """``<DS>_0_y_<yaw>_x``: the authors' view folder name (their code calls the yaw axis "x")."""
    return f"{data_name}_0_y_{yaw}_x"


@dataclass(frozen=True)
class ViewFiles:
    """Every file of one item in one view."""

    shaded: Path
    noshading_front: Path
    noshading_back: Path
    depth_front: Path
    depth_back: Path
    keypoint: Path
    keypoint_sample: Path

    @property
    def image_files(self) -> tuple[Path, ...]:
        """The files ``render.py`` writes (keypoints come from ``render_keypoint.py``)."""
        return (
            self.shaded,
            self.noshading_front,
            self.noshading_back,
            self.depth_front,
            self.depth_back,
        )


def view_files(
    data_path: str | os.PathLike, data_name: str, item: str, yaw: int, projection: str = "PERS"
) -> ViewFiles:
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    root = Path(data_path) / projection
    view = view_name(data_name, yaw)
    return ViewFiles(
        shaded=root / "COLOR" / "SHADED" / view / f"{item}_front.png",
        noshading_front=root / "COLOR" / "NOSHADING" / view / f"{item}_front.png",
        noshading_back=root / "COLOR" / "NOSHADING" / view / f"{item}_back.png",
        depth_front=root / "DEPTH" / view / f"{item}_front.png",
        depth_back=root / "DEPTH" / view / f"{item}_back.png",
        keypoint=root / "keypoint" / view / f"{item}_front.npy",
        keypoint_sample=root / "keypoint_sample" / view / f"{item}.png",
    )


def list_line(data_name: str, item: str, yaw: int) -> str:
    """One line of ``list/<DS>_all.txt``: SHADED, NOSHADING, front DEPTH paths, each ``/``-led."""
    view = view_name(data_name, yaw)
    return (
        f"/PERS/COLOR/SHADED/{view}/{item}_front.png "
        f"/PERS/COLOR/NOSHADING/{view}/{item}_front.png "
        f"/PERS/DEPTH/{view}/{item}_front.png"
    )


def list_path(data_path: str | os.PathLike, data_name: str) -> Path:
    return Path(data_path) / "list" / f"{data_name}_all.txt"
