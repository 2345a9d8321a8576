"""Generate open synthetic training humans (Anny, CC0 assets) in the 2K2K data layout.

Run from the repository root as a module::

    # 8 humans into data/synthetic/obj/ANNY/anny_000i/anny_000i.ply + Joint3D/ANNY/anny_000i.json
    python -m render.make_synthetic --data_path data/synthetic --num 8

    # 10000 humans on shard 3 of a 16-way job array (each shard makes every 16th human)
    python -m render.make_synthetic --data_path /data/2k2k --num 10000 --num_shards 16 --shard_id 3

Humans already on disk are skipped, so an interrupted run resumes. The first run builds Anny's
~790 MB cache (1-2 minutes; set ``ANNY_CACHE_DIR`` to choose where). Render the result with
``python -m render.render --data_name ANNY``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from render.synthetic.human import CLOTHES, generate


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_path", type=Path, required=True, help="dataset root (obj/, Joint3D/)")
    p.add_argument("--num", type=int, default=8, help="number of humans (all shards together)")
    p.add_argument("--seed", type=int, default=0, help="human i uses seed * 100003 + i")
    p.add_argument("--data_name", default="ANNY", help="dataset folder name (render.py knows ANNY)")
    p.add_argument("--num_shards", type=int, default=1, help="number of parallel jobs")
    p.add_argument("--shard_id", type=int, default=0, help="this job's index in [0, num_shards)")
    p.add_argument(
        "--clothes",
        choices=CLOTHES,
        default="geometry",
        help="garments with their own surfaces, or painted on the body (the demo weights' data)",
    )
    return p


def main(args: argparse.Namespace) -> None:
    """Generate this shard's humans and print how many there are."""
    names = generate(
        args.data_path,
        args.num,
        seed=args.seed,
        data_name=args.data_name,
        num_shards=args.num_shards,
        shard_id=args.shard_id,
        clothes=args.clothes,
    )
    print(f"{len(names)} {args.data_name} humans in {args.data_path}")


if __name__ == "__main__":
    main(get_parser().parse_args())
