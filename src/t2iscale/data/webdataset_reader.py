"""Raw image-text webdataset shards -> decoded, cropped images with their captions.

Shard layout (the usual img2dataset output): tar files whose samples are `{key}.jpg|jpeg|png|webp` (the
image), `{key}.txt` (the alt-text) and optionally `{key}.json` with `"synthetic_captions": [...]` (ranked best
first; the paper recaptions its data and trains on a mix of alt-text and synthetic captions, Sec. 5).

Where the captions are is configurable (`CaptionSources`): the alt-text from a text member (`txt`) or from a
field of a JSON member (`json:caption`, `json:captions.0` for COCO-style samples), the first source a sample
has winning; the synthetic captions from a JSON field holding a list of strings (or `none`).

Images are resized so the short side is `resolution` and center-cropped to a square (SD's data
convention). This reader feeds `t2iscale data prepare`; training on real data reads the prepared shards
(`t2iscale.data.prepared`), so no image is decoded during training.

Nested dataset sizes. A data-scaling study trains on 1M, 2M, ... images, and the runs are comparable only if
the smaller set is part of the larger one. The permutation that defines the subsets is "sort every sample by
`subset_key(key, subset_seed)`" (a 63-bit hash of its key), and the subset of size N is the first N of that
order. It depends only on each sample's own key, so it is the same for any N, for any shard order, and for a
pool that later grows; finding the first N needs only the keys, which `ShardIndex` reads once from the tar
headers (no image decoding) and caches as JSON. Samples in the subset that turn out bad are dropped and
counted, so a size-N set can be a little smaller than N; it is still nested. Keys must be unique across
shards (webdataset's convention).

Bad data. An unreadable image, a sample without image or alt-text, unreadable JSON, a sample without the
synthetic captions a policy needs, or a sample with a member name stored twice (`000123.txt` twice: which one
is its caption?) is skipped, logged and counted by reason in `reader.counters` (for the training metrics).
Damage to the tar itself is read past where the format allows it: a damaged header is stepped over to the next
valid one (tar headers are 512-byte blocks with a checksum; tarfile's `ignore_zeros` resyncs there), and the
samples it broke show up as bad samples (a sample without its image, say). Where the rest of a shard cannot be
read (a truncated shard: the archive ends inside a member or without its end-of-archive blocks, which tarfile
itself would take as a clean end), the samples lost are counted as samples, reason `corrupt_shard`, so the
bad fraction sees them: the shard's expected count minus the samples read before the damage (and at least the
sample it cut). The expected count is exact where img2dataset's `{shard}_stats.json` ("successes") sits next to
the shard; otherwise it is estimated as the median count of the shards read intact in this pass (writers fill
every shard but the last to the same count), revised as more intact shards are read; with neither, only the cut
sample is counted and the summary says the loss is unknown. With `size`, a loss counts in proportion to the
subset's share of the pool. `counters.summary()` names each shard with bad samples and what it lost. When the
bad fraction passes `max_bad_fraction` (checked once `min_samples_for_check` samples were seen, and at the end)
the reader stops with a `UserError` that names the shard and the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import random
import statistics
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from t2iscale.data.caption_policy import choose_caption, needs_synthetic
from t2iscale.errors import UserError
from t2iscale.progress import progress_bar

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSION = "txt"
METADATA_EXTENSION = "json"
SYNTHETIC_CAPTIONS_FIELD = "synthetic_captions"
DEFAULT_CAPTION_SOURCES = (CAPTION_EXTENSION,)
DEFAULT_SYNTHETIC_SOURCE = f"{METADATA_EXTENSION}:{SYNTHETIC_CAPTIONS_FIELD}"
NO_SOURCE = "none"
# What a broken tar raises while it is read (a truncated gzip raises EOFError or zlib.error).
SHARD_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)

BAD_REASONS = (
    "unreadable_image",
    "missing_image",
    "missing_caption",
    "bad_json",
    "missing_synthetic_captions",
    "duplicate_member",
    "corrupt_shard",  # samples lost where a shard could not be read to its end
)
# img2dataset writes `00000_stats.json` next to `00000.tar`; "successes" is the number of samples in the tar.
STATS_SUFFIX = "_stats.json"


# ----------------------------------------------------------------------------------------------------------
# Where the captions are


def _parse_source(text: str, what: str) -> tuple[str, tuple[str | int, ...] | None]:
    """'txt' -> ('txt', None): a text member; 'json:captions.0' -> ('json', ('captions', 0)): a JSON field."""
    member, _, path = text.strip().partition(":")
    member = member.strip().lower().lstrip(".")
    if not member or (":" in text and not path.strip()):
        raise UserError(
            f"{what}: {text!r} is not a caption source; use a member extension (txt) or json:FIELD"
        )
    if not path:
        return member, None
    parts = tuple(int(part) if part.isdigit() else part for part in path.strip().split("."))
    if any(part == "" for part in parts):
        raise UserError(f"{what}: {text!r} has an empty field name")
    return member, parts


def _field(document, path: tuple[str | int, ...]):
    """`document` at a field path (names index objects, integers index lists); None where it is absent."""
    for part in path:
        if isinstance(part, int) and isinstance(document, list):
            document = document[part] if -len(document) <= part < len(document) else None
        elif isinstance(document, dict):
            document = document.get(str(part))
        else:
            return None
        if document is None:
            return None
    return document


@dataclass(frozen=True)
class CaptionSources:
    """Where a sample's captions are (`t2iscale data prepare --caption ... --synthetic-captions ...`).

    `caption`: alt-text sources tried in order, the first a sample has wins: a member extension (`txt`: the
    member's text) or `MEMBER:FIELD.PATH` (a field of a JSON member: `json:caption`, `json:captions.0`).
    `synthetic`: `MEMBER:FIELD.PATH` of a list of strings ranked best first (a single string counts as one), or
    None for data without synthetic captions.
    """

    caption: tuple[str, ...] = DEFAULT_CAPTION_SOURCES
    synthetic: str | None = DEFAULT_SYNTHETIC_SOURCE

    def __post_init__(self):
        if not self.caption:
            raise UserError("--caption: give at least one caption source (txt, json:FIELD)")
        object.__setattr__(self, "caption", tuple(self.caption))
        for source in self.caption:
            _parse_source(source, "--caption")
        if self.synthetic is not None:
            if self.synthetic.strip().lower() == NO_SOURCE:
                object.__setattr__(self, "synthetic", None)
            elif _parse_source(self.synthetic, "--synthetic-captions")[1] is None:
                raise UserError(
                    f"--synthetic-captions: {self.synthetic!r} names no field; use MEMBER:FIELD "
                    f"(e.g. {DEFAULT_SYNTHETIC_SOURCE}) or {NO_SOURCE}"
                )

    @property
    def is_default(self) -> bool:
        return self.caption == DEFAULT_CAPTION_SOURCES and self.synthetic == DEFAULT_SYNTHETIC_SOURCE

    def describe(self) -> dict:
        return {"caption": list(self.caption), "synthetic": self.synthetic}

    def read(self, raw: dict) -> tuple[str, list[str]]:
        """(alt-text, synthetic captions) of a grouped sample; ValueError for a JSON member that is not JSON or a
        synthetic field that is not a list of strings. An absent caption is '' (the caller counts it)."""
        documents: dict[str, object] = {}

        def json_member(member: str):
            if member not in documents:
                documents[member] = json.loads(raw[member]) if member in raw else None
            return documents[member]

        alt = ""
        for source in self.caption:
            member, path = _parse_source(source, "--caption")
            if path is None:
                value = raw.get(member, b"").decode("utf-8", errors="replace")
            else:
                value = _field(json_member(member), path)
            if isinstance(value, str) and value.strip():
                alt = value.strip()
                break
        synthetic: list[str] = []
        if self.synthetic is not None:
            member, path = _parse_source(self.synthetic, "--synthetic-captions")
            value = _field(json_member(member), path) if member in raw else None
            if isinstance(value, str):
                value = [value]
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(text, str) for text in value)
            ):
                raise ValueError(f"{self.synthetic} is not a list of strings")
            synthetic = [text.strip() for text in value or () if text.strip()]
        return alt, synthetic


# ----------------------------------------------------------------------------------------------------------
# Shard lists and the nested-subset order


def expand_shards(shards: str | Sequence[str]) -> list[str]:
    """'dir/{000000..000009}.tar' (braces, '::' between lists) or a list -> shard URLs; local ones must exist."""
    from webdataset.shardlists import expand_urls

    urls = expand_urls(shards) if isinstance(shards, str) else [str(shard) for shard in shards]
    if not urls:
        raise UserError(f"shard pattern {shards!r} names no shards")
    for url in urls:
        if _is_local(url) and not Path(url.removeprefix("file:")).is_file():
            raise UserError(f"shard {url!r} does not exist (from the pattern {shards!r})")
    return urls


def subset_key(key: str, subset_seed: int = 0) -> int:
    """The sample's place in the fixed permutation that defines nested subsets (a 63-bit hash of its key)."""
    digest = hashlib.blake2b(f"{subset_seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # fits a signed int64 (stored in prepared shards)


def first_n(keys: Sequence[str], size: int, subset_seed: int = 0) -> set[str]:
    """The `size` keys that come first in the subset order (ties on the hash broken by the key)."""
    if size > len(keys):
        raise UserError(f"dataset size {size} is larger than the {len(keys)} samples in the shards")
    hashes = np.fromiter((subset_key(key, subset_seed) for key in keys), dtype=np.int64, count=len(keys))
    chosen = np.lexsort((np.asarray(keys), hashes))[:size]  # sort by hash, then key
    return {keys[index] for index in chosen}


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


@contextlib.contextmanager
def _open_tar_headers(url: str):
    """A tar whose members can be listed: local files seek over the data, other URLs are streamed."""
    # Damaged headers are stepped over to the next valid one, as the reading pass does (`_TarMembers`).
    options = {"ignore_zeros": True, "tarinfo": _recording_tarinfo([])}
    if _is_local(url):
        with tarfile.open(url.removeprefix("file:"), mode="r:*", **options) as archive:
            yield archive
        return
    from webdataset.gopen import gopen

    with gopen(url) as stream, tarfile.open(fileobj=stream, mode="r|*", **options) as archive:
        yield archive


def _sample_key(name: str) -> str | None:
    """The sample key of a tar member name (webdataset's rule: all extensions split off); None for metadata."""
    from webdataset.tariterators import base_plus_ext

    prefix, _ = base_plus_ext(name)
    return None if prefix is None or prefix.startswith("__") else prefix


# ----------------------------------------------------------------------------------------------------------
# Reading one shard: tar members -> grouped samples, damage found and located


class ShardDamage(Exception):
    """The rest of a shard cannot be read. `partial`: a sample was cut (some of its members were read)."""

    def __init__(self, problem: str, partial: bool = False):
        super().__init__(problem)
        self.problem, self.partial = problem, partial


def _recording_tarinfo(events: list[tuple[int, str]]) -> type[tarfile.TarInfo]:
    """A TarInfo class that records every header block tarfile could not read, as (offset, error class).

    tarfile ends the member loop quietly at a truncated header or at the end of the data, exactly as at a real
    end of archive; these records tell the two apart (a complete archive ends with zero blocks). A damaged
    header after a pax or GNU long-name header (every member of a webdataset-written shard has a pax header)
    becomes an invalid header, which `ignore_zeros` steps over, instead of tarfile's end of the whole archive.
    """

    class RecordingTarInfo(tarfile.TarInfo):
        depth = 0  # 2 while reading the header that follows a pax / long-name header

        @classmethod
        def fromtarfile(cls, archive):
            offset = archive.offset
            cls.depth += 1
            try:
                return super().fromtarfile(archive)
            except tarfile.SubsequentHeaderError as error:
                events.append((offset, "InvalidHeaderError"))
                raise tarfile.InvalidHeaderError(str(error)) from error
            except tarfile.HeaderError as error:
                if cls.depth == 1:
                    events.append((offset, type(error).__name__))
                raise
            finally:
                cls.depth -= 1

    return RecordingTarInfo


class _TarMembers:
    """Iterates (name, data) of a tar stream's regular members, in order.

    Damaged headers are stepped over (`skipped`: the byte offset of each damaged place); an archive that stops
    early (truncated inside a member, or without end-of-archive blocks) raises `ShardDamage` where it stops.
    """

    def __init__(self, stream):
        self.stream = stream
        self.skipped: list[int] = []

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        events: list[tuple[int, str]] = []
        last_header = -1
        try:
            tarinfo = _recording_tarinfo(events)
            with tarfile.open(fileobj=self.stream, mode="r|*", ignore_zeros=True, tarinfo=tarinfo) as archive:
                for member in archive:
                    last_header = member.offset
                    if member.isreg():
                        yield member.name, archive.extractfile(member).read()
                    archive.members = []  # stream mode keeps every TarInfo otherwise
        except SHARD_ERRORS as error:
            raise ShardDamage(f"unreadable from here on ({_describe_error(error)})") from error
        previous = None
        for offset, kind in events:
            # tarfile steps 512 bytes per unreadable block: a run of them is one damaged place.
            if kind == "InvalidHeaderError" and previous != offset - 512:
                self.skipped.append(offset)
            previous = offset if kind == "InvalidHeaderError" else None
        if not any(kind == "EOFHeaderError" and offset > last_header for offset, kind in events):
            end = max((offset for offset, _ in events), default=0)
            raise ShardDamage(f"truncated: the archive stops at byte {end} without its end-of-archive blocks")


def _describe_error(error: BaseException) -> str:
    detail = str(error.args[0]) if error.args else ""
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _grouped_samples(members: Iterable[tuple[str, bytes]]) -> Iterator[dict]:
    """Consecutive members with one key -> {"__key__": key, ext: data, ...} (webdataset's grouping).

    Unlike `webdataset.tariterators.group_by_keys`, which stops the whole shard at a member name stored twice, the
    sample gets `"__duplicates__"` (its names stored twice) and reading goes on with the next sample.
    """
    current: dict | None = None
    try:
        for name, data in members:
            prefix = _sample_key(name)
            if prefix is None:
                continue
            suffix = name[len(prefix) + 1 :].lower()
            if current is None or prefix != current["__key__"]:
                if current is not None:
                    yield current
                current = {"__key__": prefix}
            if suffix in current:
                current.setdefault("__duplicates__", []).append(name)
            else:
                current[suffix] = data
    except ShardDamage as damage:
        damage.partial = current is not None  # the sample being read when the shard broke is cut
        raise
    if current is not None:
        yield current


def img2dataset_count(url: str) -> int | None:
    """The sample count img2dataset recorded for a local shard (`{shard}_stats.json`: "successes"), if any."""
    if not _is_local(url):
        return None
    path = Path(url.removeprefix("file:"))
    stats = path.with_name(path.name.split(".", 1)[0] + STATS_SUFFIX)
    try:
        count = json.loads(stats.read_text()).get("successes")
    except (OSError, ValueError, AttributeError):
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None


@dataclass
class ShardIndex:
    """The sample keys of every shard, read from tar headers once (for nested subsets and progress totals)."""

    urls: list[str]
    keys: list[list[str]]

    @classmethod
    def build(cls, urls: Sequence[str], progress: bool = True) -> ShardIndex:
        all_keys = []
        for url in progress_bar(urls, enabled=progress, desc="indexing shards", unit="shard"):
            keys: dict[str, None] = {}
            try:
                with _open_tar_headers(url) as archive:
                    for member in archive:
                        prefix = _sample_key(member.name)
                        if member.isreg() and prefix is not None:
                            keys.setdefault(prefix)
            except SHARD_ERRORS as error:
                # The reading pass counts the corrupt shard; the index keeps the keys before the damage.
                log.warning("shard %s is damaged after %d samples: %s", url, len(keys), error)
            all_keys.append(list(keys))
        return cls(list(urls), all_keys)

    @classmethod
    def load_or_build(cls, path: Path, urls: Sequence[str], progress: bool = True) -> ShardIndex:
        if path.exists():
            index = cls(**json.loads(path.read_text()))
            if index.urls == list(urls):
                return index
            log.warning("index %s lists other shards; rebuilding it", path)
        index = cls.build(urls, progress=progress)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"urls": index.urls, "keys": index.keys}))
        tmp.replace(path)
        return index

    @property
    def count(self) -> int:
        return sum(len(keys) for keys in self.keys)

    def first_n(self, size: int, subset_seed: int = 0) -> set[str]:
        return first_n([key for keys in self.keys for key in keys], size, subset_seed)


# ----------------------------------------------------------------------------------------------------------
# Bad-data accounting


@dataclass
class DataCounters:
    """Good samples and bad ones by reason; `as_metrics()` is what the training loop logs.

    `bad["corrupt_shard"]`, `bad_by_shard` and `reasons_by_shard` (per shard, by reason) include the samples
    lost in damaged shards; `damaged` says per shard what broke, the samples read before it, the count the
    shard should hold and on what basis, and the samples lost. `intact_shards` holds the sample count of every
    shard read to its end, the basis of those estimates.
    """

    good: int = 0
    bad: Counter = field(default_factory=Counter)
    last_bad: tuple[str, str] | None = None  # (shard, key) of the latest bad sample
    bad_by_shard: Counter = field(default_factory=Counter)
    reasons_by_shard: dict[str, Counter] = field(default_factory=dict)
    intact_shards: dict[str, int] = field(default_factory=dict)
    damaged: dict[str, dict] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    @property
    def seen(self) -> int:
        return self.good + self.bad_total

    @property
    def bad_fraction(self) -> float:
        return self.bad_total / self.seen if self.seen else 0.0

    def as_metrics(self, prefix: str = "data/") -> dict[str, int]:
        metrics = {f"{prefix}good_samples": self.good, f"{prefix}bad_samples": self.bad_total}
        metrics.update({f"{prefix}bad_{reason}": self.bad[reason] for reason in BAD_REASONS})
        return metrics

    def to_json(self) -> dict:
        return {
            "good": self.good,
            "bad": dict(self.bad),
            "bad_by_shard": dict(self.bad_by_shard),
            "reasons_by_shard": {url: dict(reasons) for url, reasons in self.reasons_by_shard.items()},
            "intact_shards": dict(self.intact_shards),
            "damaged": {url: dict(record) for url, record in self.damaged.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> DataCounters:
        return cls(
            good=data["good"],
            bad=Counter(data["bad"]),
            bad_by_shard=Counter(data["bad_by_shard"]),
            reasons_by_shard={url: Counter(r) for url, r in data.get("reasons_by_shard", {}).items()},
            intact_shards=dict(data.get("intact_shards", {})),
            damaged={url: dict(record) for url, record in data.get("damaged", {}).items()},
        )

    def shard_problems(self) -> list[str]:
        """One line per shard with bad samples or damage: its bad samples by reason, what broke, what was lost."""
        lines = []
        for url in sorted(set(self.bad_by_shard) | set(self.damaged)):
            reasons = self.reasons_by_shard.get(url, Counter())
            parts = [f"{reason}={count}" for reason, count in sorted(reasons.items()) if count]
            parts = [part for part in parts if not part.startswith("corrupt_shard=")]
            if url in self.damaged:
                parts.append(_damage_text(self.damaged[url]))
            if parts:
                lines.append(f"shard {url!r}: " + ", ".join(parts))
        return lines

    def headline(self) -> str:
        """'N bad of M samples (x%): reason=count, ...'."""
        reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(self.bad.items()) if count)
        text = f"{self.bad_total} bad of {self.seen} samples ({self.bad_fraction:.2%})"
        return text + (f": {reasons}" if reasons else "")

    def summary(self) -> str:
        """The headline, then each shard with bad samples and what it lost (one line, for logs and errors)."""
        return "; ".join([self.headline(), *self.shard_problems()])


def _damage_text(damage: dict) -> str:
    """What broke in a shard and what it cost, for the summary."""
    if not damage["truncated"]:
        text = f"{damage['problem']}; any sample they broke is counted as a bad sample"
        if damage["lost"]:
            text += f"; {damage['lost']} more sample(s) missing of {damage['expected']} ({damage['basis']})"
        return text
    if damage["expected"] is None:
        counted = "the one cut" if damage["partial"] else "none was cut"
        loss = f"{damage['lost']} sample(s) counted as lost ({counted}); the true loss is unknown, with {damage['basis']}"
    else:
        loss = f"{damage['lost']} sample(s) lost of {damage['expected']} ({damage['basis']})"
    return f"{damage['problem']} ({damage['read']} samples read): {loss}"


class BadDataLimit:
    """Stops the pass with a UserError once too large a fraction of samples is bad."""

    def __init__(self, counters: DataCounters, max_bad_fraction: float, min_samples_for_check: int):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise UserError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.counters = counters
        self.max_bad_fraction = max_bad_fraction
        self.min_samples_for_check = min_samples_for_check

    def record(self, reason: str, url: str, key: str, detail: str = "") -> None:
        assert reason in BAD_REASONS, reason
        self.counters.bad[reason] += 1
        self.counters.bad_by_shard[url] += 1
        self.counters.reasons_by_shard.setdefault(url, Counter())[reason] += 1
        self.counters.last_bad = (url, key)
        log.warning("skipping bad sample %r in shard %s: %s %s", key, url, reason, detail)
        if self.counters.seen >= self.min_samples_for_check:
            self.check(f"shard {url!r} (sample {key!r}, {reason})")

    def record_damage(self, url: str, damage: dict, subset_share: Fraction) -> None:
        """A damaged shard: counts its lost samples (see `account_losses`) and checks the limit."""
        counted = self.counters.damaged.get(url, {}).get("lost", 0)  # already in the counts (a resumed pass)
        self.counters.damaged[url] = {**damage, "expected": None, "basis": "", "lost": counted}
        log.warning("shard %s is damaged: %s", url, damage["problem"])
        self.account_losses(subset_share)
        if self.counters.seen >= self.min_samples_for_check:
            self.check(f"shard {url!r} ({_damage_text(self.counters.damaged[url])})")

    def account_losses(self, subset_share: Fraction) -> None:
        """(Re)count the samples lost in each damaged shard from the best expected count known now.

        Lost = expected - read, and at least the sample that was cut; with a subset (`subset_share` = subset
        size / pool size) the share of them that the subset would hold, rounded up. A shard whose damaged
        headers were stepped over (not truncated) loses only what an exact count says is missing.
        """
        counters = self.counters
        intact = list(counters.intact_shards.values())
        for url, damage in counters.damaged.items():
            expected = damage.get("stats_count")
            basis = "the shard's img2dataset stats file" if expected is not None else ""
            if expected is None and damage["truncated"]:
                if intact:
                    expected = int(statistics.median_low(intact))
                    basis = f"estimated: the median of the {len(intact)} intact shard(s) read so far"
                else:
                    basis = "no intact shard or img2dataset stats file to estimate it from"
            lost_in_pool = max(int(damage["partial"]), (expected or 0) - damage["read"])
            lost = math.ceil(lost_in_pool * subset_share)  # subset_share is a Fraction: exact
            if lost != damage["lost"]:
                change = lost - damage["lost"]
                counters.bad["corrupt_shard"] += change
                counters.bad_by_shard[url] += change
                counters.reasons_by_shard.setdefault(url, Counter())["corrupt_shard"] += change
            damage.update(expected=expected, basis=basis, lost=lost)

    def check(self, where: str | None = None) -> None:
        counters = self.counters
        if counters.bad_fraction <= self.max_bad_fraction:
            return
        if where is None:  # the end-of-pass check: name the worst shard and the latest bad sample
            worst_shard = counters.bad_by_shard.most_common(1)[0][0]
            last_url, last_key = counters.last_bad or ("?", "?")
            where = (
                f"the end of the pass (most bad samples in shard {worst_shard!r}; "
                f"latest: sample {last_key!r} in shard {last_url!r})"
            )
        raise UserError(
            f"too much bad data at {where}: {counters.summary()}, above max_bad_fraction "
            f"{self.max_bad_fraction}. Fix or drop the shard, or raise max_bad_fraction"
        )


# ----------------------------------------------------------------------------------------------------------
# Samples


@dataclass
class RawSample:
    """One decoded sample: `image` (3, R, R) float in [-1, 1], its alt-text and ranked synthetic captions."""

    key: str
    url: str
    shard_index: int
    ordinal: int  # position of the sample in its shard (counting every sample, good or bad)
    image: torch.Tensor
    alt: str
    synthetic: list[str]


@dataclass(frozen=True)
class ReaderPosition:
    """Where a pass stopped: after sample `ordinal` of shard `shard_index` (resume starts right after it)."""

    shard_index: int
    ordinal: int


def load_image(data: bytes, resolution: int) -> torch.Tensor:
    """Encoded image bytes -> (3, resolution, resolution) float in [-1, 1]: short side resized, center crop."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        square = ImageOps.fit(image.convert("RGB"), (resolution, resolution), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(square, dtype=np.uint8).copy())  # (R, R, 3)
    return pixels.permute(2, 0, 1).float().div(127.5).sub(1.0)  # (3, R, R)


class WebDatasetReader:
    """Iterates decoded samples of raw webdataset shards in shard order, skipping and counting bad ones.

    `size` keeps only the first `size` samples of the nested-subset order (see the module docstring); it
    builds (or reads) a `ShardIndex` at `index_path`. `captions` says where the captions are (`CaptionSources`). `start_after` resumes a pass after a `ReaderPosition`
    with the counters it had there. `counters` always describes the current pass.
    """

    def __init__(
        self,
        shards: str | Sequence[str],
        resolution: int,
        *,
        size: int | None = None,
        subset_seed: int = 0,
        index_path: str | Path | None = None,
        max_bad_fraction: float = 0.01,
        min_samples_for_check: int = 1000,
        progress: bool = True,
        captions: CaptionSources | None = None,
    ):
        self.urls = expand_shards(shards)
        self.resolution = resolution
        self.captions = captions if captions is not None else CaptionSources()
        self.size = size
        self.subset_seed = subset_seed
        self.max_bad_fraction = max_bad_fraction
        self.min_samples_for_check = min_samples_for_check
        self.counters = DataCounters()
        self.index: ShardIndex | None = None
        self.selected_keys: set[str] | None = None
        if size is not None:
            if size < 1:
                raise UserError(f"dataset size must be positive, got {size}")
            if index_path is None:
                self.index = ShardIndex.build(self.urls, progress=progress)
            else:
                self.index = ShardIndex.load_or_build(Path(index_path), self.urls, progress=progress)
            self.selected_keys = self.index.first_n(size, subset_seed)
        # The share of a damaged shard's lost samples that the subset would have held.
        self.subset_share = Fraction(1) if self.index is None else Fraction(size, self.index.count)
        BadDataLimit(self.counters, max_bad_fraction, min_samples_for_check)  # validates the fraction

    def __iter__(self) -> Iterator[RawSample]:
        return self.samples()

    def samples(
        self,
        start_after: ReaderPosition | None = None,
        counters: DataCounters | None = None,
        require_synthetic: bool = False,
    ) -> Iterator[RawSample]:
        """One pass over every shard; `start_after` + `counters` continue an interrupted pass exactly."""
        self.counters = counters if counters is not None else DataCounters()
        limit = BadDataLimit(self.counters, self.max_bad_fraction, self.min_samples_for_check)
        for shard_index, url in enumerate(self.urls):
            if start_after is not None and shard_index < start_after.shard_index:
                continue
            skip_through = (
                start_after.ordinal if start_after and shard_index == start_after.shard_index else -1
            )
            yield from self._shard_samples(shard_index, url, skip_through, limit, require_synthetic)
        limit.account_losses(self.subset_share)
        limit.check()

    def _shard_samples(
        self, shard_index: int, url: str, skip_through: int, limit: BadDataLimit, require_synthetic: bool
    ) -> Iterator[RawSample]:
        from webdataset.gopen import gopen

        try:
            stream = gopen(url)
        except OSError as error:
            raise UserError(f"cannot open shard {url!r}: {error}") from error
        with stream:
            members = _TarMembers(stream)
            raw_samples = _grouped_samples(members)
            ordinal, key = -1, "<start of shard>"
            while True:
                try:
                    raw = next(raw_samples)
                except StopIteration:
                    self.counters.intact_shards[url] = ordinal + 1
                    if members.skipped:
                        places = ", ".join(f"byte {offset}" for offset in members.skipped)
                        problem = f"damaged tar header(s) stepped over at {places}"
                        self._damaged(limit, url, problem, ordinal + 1, truncated=False, partial=False)
                    else:
                        limit.account_losses(self.subset_share)  # one more intact count for the estimates
                    return
                except ShardDamage as damage:
                    problem = f"{damage.problem}, after sample {key!r}" if ordinal >= 0 else damage.problem
                    self._damaged(limit, url, problem, ordinal + 1, truncated=True, partial=damage.partial)
                    return
                ordinal, key = ordinal + 1, raw["__key__"]
                if ordinal <= skip_through:
                    continue
                if self.selected_keys is not None and key not in self.selected_keys:
                    continue
                sample = self._decode(raw, url, shard_index, ordinal, limit, require_synthetic)
                if sample is not None:
                    self.counters.good += 1
                    yield sample

    def _damaged(
        self, limit: BadDataLimit, url: str, problem: str, read: int, truncated: bool, partial: bool
    ) -> None:
        damage = {"problem": problem, "truncated": truncated, "partial": partial, "read": read}
        limit.record_damage(url, {**damage, "stats_count": img2dataset_count(url)}, self.subset_share)

    def _decode(
        self,
        raw: dict,
        url: str,
        shard_index: int,
        ordinal: int,
        limit: BadDataLimit,
        require_synthetic: bool,
    ) -> RawSample | None:
        key = raw["__key__"]
        if "__duplicates__" in raw:
            limit.record("duplicate_member", url, key, f"stored twice: {raw['__duplicates__']}")
            return None
        image_extension = next((ext for ext in IMAGE_EXTENSIONS if ext in raw), None)
        if image_extension is None:
            limit.record(
                "missing_image", url, key, f"files: {sorted(k for k in raw if not k.startswith('__'))}"
            )
            return None
        try:
            alt, synthetic = self.captions.read(raw)
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            limit.record("bad_json", url, key, str(error))
            return None
        if not alt:
            sources = ", ".join(self.captions.caption)
            limit.record("missing_caption", url, key, f"no caption in {sources}")
            return None
        if require_synthetic and not synthetic:
            limit.record("missing_synthetic_captions", url, key)
            return None
        try:
            image = load_image(raw[image_extension], self.resolution)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            limit.record("unreadable_image", url, key, f"{type(error).__name__}: {error}")
            return None
        return RawSample(key, url, shard_index, ordinal, image, alt, synthetic)

    def captioned(
        self, caption_policy: str, seed: int = 0, epoch: int = 0
    ) -> Iterator[tuple[torch.Tensor, str, str]]:
        """One pass yielding (image (3, R, R), caption, key) with the caption policy applied at load time.

        The caption draw uses an rng seeded from (seed, key, epoch), so it is the same whatever the shard
        order, subset size or resume point, and differs from epoch to epoch (syn5, mix). Samples without
        synthetic captions count as bad under a policy that needs them.
        """
        for sample in self.samples(require_synthetic=needs_synthetic(caption_policy)):
            rng = random.Random(f"{seed}:{sample.key}:{epoch}")
            yield sample.image, choose_caption(caption_policy, sample.alt, sample.synthetic, rng), sample.key
