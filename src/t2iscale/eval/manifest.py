"""The image manifest: the file that links generation to scoring ("generate, then score, linked by files").

A manifest is a JSON-lines file with one line per generated image:

    {"prompt_id": "colors_003", "seed": 0, "path": "images/colors_003_s0.png", "caption": "a red circle"}

`prompt_id` (str), `seed` (int) and `path` (str, relative to an image folder — by default the manifest's own
folder) are required; `caption` (str) is optional and `meta` (an object) may carry free-form details of the
generation. Other keys are errors, and so is a repeated (prompt_id, seed) pair.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from t2iscale.errors import UserError
from t2iscale.images import save_png

_REQUIRED = {"prompt_id": str, "seed": int, "path": str}
_OPTIONAL = {"caption": str, "meta": dict}


@dataclass(frozen=True)
class ManifestEntry:
    prompt_id: str
    seed: int
    path: str  # relative to the image folder (the manifest's folder by default)
    caption: str | None = None
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        line = asdict(self)
        if self.caption is None:
            del line["caption"]
        if not self.meta:
            del line["meta"]
        return line


def write_manifest(path: str | Path, entries: list[ManifestEntry]) -> Path:
    """Write entries as JSON lines (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for entry in entries:
            file.write(json.dumps(entry.to_json(), sort_keys=True) + "\n")
    return path


def parse_manifest_line(text: str, where: str) -> ManifestEntry:
    try:
        line = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: not valid JSON ({error})") from error
    if not isinstance(line, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(line).__name__}")
    for key, expected in _REQUIRED.items():
        if key not in line:
            raise UserError(f"{where}: missing key {key!r}")
        # bool is an int in Python; a seed of `true` is still a mistake.
        if not isinstance(line[key], expected) or isinstance(line[key], bool):
            raise UserError(f"{where}: {key!r} must be a {expected.__name__}, got {line[key]!r}")
    for key, expected in _OPTIONAL.items():
        if key in line and not isinstance(line[key], expected):
            raise UserError(f"{where}: {key!r} must be a {expected.__name__}, got {line[key]!r}")
    unknown = sorted(set(line) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        valid = ", ".join([*_REQUIRED, *_OPTIONAL])
        raise UserError(f"{where}: unknown key {unknown[0]!r}; valid keys: {valid}")
    if not line["prompt_id"] or not line["path"]:
        raise UserError(f"{where}: 'prompt_id' and 'path' must not be empty")
    if Path(line["path"]).is_absolute():
        raise UserError(f"{where}: 'path' must be relative to the image folder, got {line['path']!r}")
    return ManifestEntry(**line)


def read_manifest(
    path: str | Path, image_dir: str | Path | None = None, check_files: bool = True
) -> list[ManifestEntry]:
    """Read and validate a manifest; with `check_files`, every image must exist under `image_dir`.

    `image_dir` defaults to the manifest's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {str(path)!r} does not exist")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    entries: list[ManifestEntry] = []
    seen: dict[tuple[str, int], int] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        entry = parse_manifest_line(text, where)
        key = (entry.prompt_id, entry.seed)
        if key in seen:
            raise UserError(
                f"{where}: prompt {entry.prompt_id!r} with seed {entry.seed} already appears on line {seen[key]}"
            )
        seen[key] = number
        if check_files and not (image_dir / entry.path).is_file():
            raise UserError(f"{where}: image file {str(image_dir / entry.path)!r} does not exist")
        entries.append(entry)
    if not entries:
        raise UserError(f"manifest {str(path)!r} has no entries")
    return entries


def load_image(path: str | Path) -> np.ndarray:
    """An image file as np.uint8 (H, W, 3) RGB."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy
    except OSError as error:
        raise UserError(f"cannot read image {str(path)!r}: {error}") from error


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Save an image as a lossless PNG (creating the folder): np.uint8 (H, W, 3), or floats in [0, 1]
    (`t2iscale.images.save_png`; an ambiguous array is a UserError, never a silently black image)."""
    return save_png(path, image)
