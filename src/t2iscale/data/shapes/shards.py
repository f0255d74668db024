"""Writing a shapes dataset as webdataset shards in the format the real-data reader takes.

Per image: `{key}.png`, `{key}.txt` (the alt text) and `{key}.json` with the scene, the alt text and
`synthetic_captions` (five, best first), the same keys real data has (`{key}.jpg|png`, `{key}.txt`, optional
`{key}.json` with `synthetic_captions`). Next to the shards, `dataset.json` describes the whole set.
"""

from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from t2iscale.data.shapes.dataset import ShapesDataset
from t2iscale.errors import UserError
from t2iscale.progress import progress_bar

SHARD_PATTERN = "shapes-%06d.tar"


def write_shards(
    dataset: ShapesDataset, out_dir: str | Path, shard_size: int = 1000, progress: bool = True
) -> dict:
    """Write every image of `dataset` to `out_dir`; returns (and writes as dataset.json) the summary."""
    if shard_size < 1:
        raise UserError(f"--shard-size must be at least 1 image, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("shapes-*.tar")):
        raise UserError(f"output directory {str(out_dir)!r} already holds shapes shards; choose an empty one")
    noun_pairs_total = 0
    with wds.ShardWriter(str(out_dir / SHARD_PATTERN), maxcount=shard_size, verbose=0) as sink:
        for index in progress_bar(range(len(dataset)), enabled=progress, desc="shapes shards", unit="img"):
            record = dataset.record(index)
            noun_pairs_total += record["noun_pairs"]
            sink.write(
                {
                    "__key__": record["key"],
                    "png": record["image"],  # webdataset's encoder writes the uint8 array as PNG
                    "txt": record["alt"],
                    "json": {
                        "alt": record["alt"],
                        "synthetic_captions": record["synthetic_captions"],
                        "scene": record["scene"],
                        "noun_pairs": record["noun_pairs"],
                    },
                }
            )
    summary = {
        **dataset.describe(),
        "images": len(dataset),
        "noun_pairs_total": noun_pairs_total,
        "shards": sorted(p.name for p in out_dir.glob("shapes-*.tar")),
    }
    (out_dir / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
