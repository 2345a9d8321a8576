"""Screened Poisson meshes of the point clouds written by ``test_02_model.py`` (Open3D).

By default it reads the authors' layout, ``<save_path>/<save_name>/output_plys/*.ply``, and writes
``<save_path>/<save_name>/output_objs/<stem>.obj`` (vertices, vertex colours, normals, faces);
``--side_fill`` meshes the side-filled clouds of ``output_plys_c/`` into ``output_objs_c/``.
``--input`` takes PLY files or folders instead, with ``--output`` as the output folder. The
resolved settings are written to ``args.json`` in the output folder.

Normals: those stored in a PLY are used; otherwise, for clouds back-projected from depth maps (the
points lie on the camera's pixel rays) they come from the depth maps rebuilt from the cloud,
else from PCA of 30 neighbours signed with the known camera (``meshing.normals``). The defaults
(depth 10 at scale 1.5, point weight 10) take about 16 s per 2048² cloud on 2 cores and are more
accurate than the authors' pymeshlab settings (``--authors``: 70-neighbour normals with
spanning-tree orientation, depth 10 at scale 1.1, point weight 4, fragments kept), which take
minutes (``bench/bench_poisson.py``); ``--depth 9 --scale 1.1`` is twice as fast and smooths folds.

No detached fragments (a deviation from the authors, on by default): of the Poisson surface only
the connected component with the most vertices is written; pieces floating beside the body (stray
depth on real photos) are dropped. ``--keep_fragments`` writes the whole surface, as the authors.

A file that cannot be meshed, for whatever reason, is reported as one line (file and reason;
``--debug`` adds the traceback) and skipped, and nothing is written under its name; the exit
status is 1 if any file failed. Bad arguments and an unwritable output folder stop the run before
anything is written.

Examples:
    python test_03_poisson.py --save_path result --save_name test
    python test_03_poisson.py --input result/test/output_plys --output meshes --jobs 2
    python test_03_poisson.py --save_path result --save_name test --authors   # pymeshlab-like
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from meshing.batch import list_clouds, output_paths, run_batch
from meshing.io import MESH_FORMATS, PointCloudError
from meshing.poisson import AUTHORS_OPTIONS, NORMAL_METHODS, PoissonOptions
from utils.batch import add_debug_argument, exit_on_failures
from utils.fileio import check_writable_dir, write_text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--save_path", default="result", help="output root of test_02_model.py")
    io.add_argument("--save_name", default="test", help="folder under --save_path")
    io.add_argument("--side_fill", action="store_true", help="mesh output_plys_c/ (side-filled)")
    io.add_argument("--input", nargs="+", help="PLY files or folders (instead of the layout)")
    io.add_argument("--output", help="output folder for --input")
    io.add_argument("--format", choices=MESH_FORMATS, default="obj", help="mesh file format")
    io.add_argument("--skip_existing", action="store_true", help="skip clouds already meshed")
    io.add_argument("--jobs", type=int, default=1, help="files meshed in parallel processes")
    io.add_argument(
        "--threads",
        type=int,
        help="Poisson threads per job (default 1: more can segfault under load; 0 = all cores)",
    )
    add_debug_argument(io)
    rec = p.add_argument_group("reconstruction (defaults: meshing.PoissonOptions)")
    rec.add_argument("--authors", action="store_true", help="start from the authors' settings")
    rec.add_argument("--depth", type=int, help="octree depth (default 10, as the authors)")
    rec.add_argument("--point_weight", type=float, help="screening weight (default 10; authors 4)")
    rec.add_argument("--scale", type=float, help="bounding cube / cloud size (1.5; authors 1.1)")
    rec.add_argument("--samples_per_node", type=float, help="minimum samples per leaf (1.5)")
    rec.add_argument("--linear_fit", action="store_true", help="linear iso-vertex placement")
    rec.add_argument("--normals", choices=NORMAL_METHODS, help="normals of clouds without them")
    rec.add_argument("--normal_neighbors", type=int, help="PCA neighbours (default 30; authors 70)")
    rec.add_argument("--ignore_file_normals", action="store_true", help="recompute PLY normals")
    rec.add_argument(
        "--authors_scale",
        action="store_true",
        help="the clouds were divided by 1.0367394 (test_02_model.py --authors_scale)",
    )
    rec.add_argument(
        "--density_quantile",
        type=float,
        help="remove the lowest-density vertices, this quantile (default 0: off, as the authors)",
    )
    rec.add_argument(
        "--keep_fragments",
        action="store_true",
        help="keep every connected component, as the authors (default: only the one with the "
        "most vertices, detached fragments dropped)",
    )
    return p


def resolve_options(args: argparse.Namespace) -> PoissonOptions:
    """Defaults (or the authors' settings) with the given arguments on top."""
    base = AUTHORS_OPTIONS if args.authors else PoissonOptions()
    names = ("depth", "point_weight", "scale", "samples_per_node", "normals", "normal_neighbors")
    # "is not None": 0 is a value (--point_weight 0 is unscreened Poisson), not "unset"
    changes = {
        n: getattr(args, n) for n in (*names, "density_quantile") if getattr(args, n) is not None
    }
    if args.linear_fit:
        changes["linear_fit"] = True
    if args.keep_fragments:
        changes["largest_component"] = False
    if args.authors_scale:
        # inference imports torch: only here, so --jobs workers (which re-import this script
        # under spawn) do not load it
        from inference.pointcloud import AUTHORS_PLY_SCALE

        changes["camera_z"] = 1.0 / AUTHORS_PLY_SCALE
    if args.threads is not None:
        changes["threads"] = args.threads
    return dataclasses.replace(base, **changes)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.input:
        if not args.output:
            raise SystemExit("error: --input needs --output (the folder for the meshes)")
        out_dir = Path(args.output)
        sources = args.input
    else:
        root = Path(args.save_path) / args.save_name
        suffix = "_c" if args.side_fill else ""
        out_dir = root / f"output_objs{suffix}"
        sources = [root / f"output_plys{suffix}"]
    try:
        options = resolve_options(args)
        inputs = list_clouds(sources)
        outputs = output_paths(inputs, out_dir, args.format)
        check_writable_dir(out_dir)
    except (PointCloudError, ValueError, OSError) as e:
        raise SystemExit(f"error: {e}") from e
    resolved = {**vars(args), "options": dataclasses.asdict(options)}
    write_text(out_dir / "args.json", json.dumps(resolved, indent=2, default=str))
    report = run_batch(
        inputs,
        outputs,
        options,
        jobs=args.jobs,
        skip_existing=args.skip_existing,
        file_normals=not args.ignore_file_normals,
        debug=args.debug,
    )
    print(
        f"{len(report.done)} meshed, {len(report.skipped)} already done, "
        f"{len(report.failed)} failed; meshes in {out_dir}"
    )
    exit_on_failures(message for _, message in report.failed)  # each message names its file


if __name__ == "__main__":
    main(get_parser().parse_args())
