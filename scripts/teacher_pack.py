"""Copy a teacher cache into a portable folder (e.g. one tracked in the repository).

    python scripts/teacher_pack.py /work/cache/teacher data/teacher

Copies ``spec.json``, every entry the manifest names and the manifest itself, with
each row's ``size`` filled in from the audio file as it is now (rows written before
the labelling script recorded sizes): a copy then matches the same clips on a
machine where the data files have other mtimes (see
:class:`mirtag.trainer.teacher_cache.TeacherCache`). Rows whose entry or audio is
missing are left out; the last row of a clip wins.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="teacher cache root or spec folder")
    ap.add_argument("dst", help="destination root (the spec folder is created inside)")
    args = ap.parse_args(argv)
    src = Path(args.src)
    if not (src / "spec.json").is_file():
        found = sorted(p.parent for p in src.glob("*/spec.json"))
        if len(found) != 1:
            sys.exit(f"{src}: expected one spec folder, found {len(found)}")
        src = found[0]
    dst = Path(args.dst) / src.name
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "spec.json", dst / "spec.json")
    rows: dict[str, dict] = {}
    for line in (src / "manifest.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        entry = src / f"{row['entry']}.npz"
        if not entry.is_file():
            continue
        try:
            row["size"] = os.stat(row["file"]).st_size
        except OSError:
            continue
        rows[row["key"]] = row
    for row in rows.values():
        shutil.copy2(src / f"{row['entry']}.npz", dst / f"{row['entry']}.npz")
    with open(dst / "manifest.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows.values())
    size = sum(p.stat().st_size for p in dst.iterdir())
    print(f"{len(rows)} entries, {size / 1e6:.1f} MB -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
