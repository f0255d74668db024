"""`t2iscale zoo`: the backbone table (params, GMACs, attention GMACs, forward GFLOPs) and `zoo compare A B`.

Torch-free: the accounting is analytic, so the whole table prints in well under a second.
"""

from __future__ import annotations

import argparse
import fnmatch
import json

from t2iscale.cli import add_command
from t2iscale.errors import UserError
from t2iscale.zoo.setting import PAPER_SETTING, Setting

COMPARE = "compare"
METRICS = (  # (label, Accounting attribute)
    ("params", "params"),
    ("GMACs", "gmacs"),
    ("attn GMACs", "gmacs_attn"),
    ("fwd GFLOPs", "fwd_gflops"),
)

DESCRIPTION = """\
Print every named zoo entry with its parameters and forward compute at batch 1, in the paper's setting unless
options say otherwise:
  GMACs       multiply-accumulates of convolutions and linear layers (the paper's Table 1 convention)
  attn GMACs  the QK^T and AV matmuls of all attentions (left out of Table 1)
  fwd GFLOPs  2 x (GMACs + attn GMACs); training compute per image = 3 x fwd GFLOPs
--json adds gmacs_attn_proj: the attention layers' projections, a part of GMACs (Table 1's attention column).
Extra names (any member of a family, e.g. sdxl-c16-td1_2) are added to the table.
`t2iscale zoo compare A B` prints B's ratios to A.
Released configs (*-release) keep their own context width and input channels."""


def register(subparsers):
    parser = add_command(
        subparsers,
        "zoo",
        run,
        help="list backbones with parameters and compute; compare two",
        description=DESCRIPTION,
    )
    parser.usage = "t2iscale zoo [options] [NAME ...]\n       t2iscale zoo compare A B [options]"
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        default=argparse.SUPPRESS,  # no "(default: None)" in --help; read with getattr below
        help="zoo names to add to the table, or `compare A B`",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--filter", default=None, help="keep named entries containing this substring or matching this glob"
    )
    parser.add_argument(
        "--resolution", type=int, default=PAPER_SETTING.resolution, help="image side in pixels"
    )
    parser.add_argument(
        "--latent-factor",
        type=int,
        default=PAPER_SETTING.latent_factor,
        help="pixels per latent cell (1 = pixel space)",
    )
    parser.add_argument(
        "--in-channels", type=int, default=PAPER_SETTING.in_channels, help="input/output channels"
    )
    parser.add_argument("--text-dim", type=int, default=PAPER_SETTING.text_dim, help="text context width")
    parser.add_argument("--text-len", type=int, default=PAPER_SETTING.text_len, help="text context tokens")


def run(args) -> int:
    from t2iscale.zoo.accounting import account
    from t2iscale.zoo.names import list_names, resolve

    setting = Setting(
        resolution=args.resolution,
        latent_factor=args.latent_factor,
        in_channels=args.in_channels,
        text_dim=args.text_dim,
        text_len=args.text_len,
    )
    extra_names = getattr(args, "names", [])
    if extra_names and extra_names[0] == COMPARE:
        if len(extra_names) != 3:
            args.command_parser.error(
                f"`t2iscale zoo compare` takes exactly two names, got {len(extra_names) - 1}"
            )
        base, other = (account(name, setting) for name in extra_names[1:])
        print(json.dumps(_comparison(base, other), indent=2) if args.json else _compare_text(base, other))
        return 0

    names = [name for name in list_names() if _matches(name, args.filter)]
    for name in extra_names:
        resolve(name)  # a bad name fails before any output
        if name not in names:
            names.append(name)
    if not names:
        raise UserError(f"no zoo name matches --filter {args.filter!r} (see `t2iscale zoo`)")
    rows = [account(name, setting) for name in names]
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(_table_text(rows, setting))
    return 0


def _matches(name: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if any(char in pattern for char in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def _describe(setting: Setting) -> str:
    space = "pixels" if setting.latent_factor == 1 else f"latents (/{setting.latent_factor})"
    return (
        f"{setting.resolution} px, {space} {setting.in_channels} x {setting.sample_size} x {setting.sample_size}, "
        f"text {setting.text_len} x {setting.text_dim}, batch 1"
    )


def compute_text(value: float) -> str:
    """GMACs / GFLOPs: two decimals at the paper's scale; four significant digits below 1 (a shapes-world UNet at
    16 px has 0.002 GMACs, which two decimals would show as 0.00)."""
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"


def _table_text(rows, setting: Setting) -> str:
    header = ("name", "family", "params", "GMACs", "attn GMACs", "fwd GFLOPs")
    # A released config fixes its own context width / input channels (`ZooEntry.fixed_setting`): mark it.
    body = [
        (
            row.name + ("*" if row.setting != setting else ""),
            row.family,
            f"{row.params:,}",
            compute_text(row.gmacs),
            compute_text(row.gmacs_attn),
            compute_text(row.fwd_gflops),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        )

    lines = [f"setting: {_describe(setting)}", line(header), *(line(cells) for cells in body)]
    if any(row.setting != setting for row in rows):
        lines.append(
            "* a released config: its own text width and input channels (see --json for its setting)"
        )
    return "\n".join(lines)


def _comparison(base, other) -> dict:
    metrics = {}
    for label, attribute in METRICS:
        a, b = getattr(base, attribute), getattr(other, attribute)
        ratio = b / a if a else float("nan")
        metrics[label] = {"A": a, "B": b, "ratio": ratio, "change_percent": 100 * (ratio - 1)}
    return {"A": base.name, "B": other.name, "setting": base.setting.to_dict(), "metrics": metrics}


def _compare_text(base, other) -> str:
    comparison = _comparison(base, other)
    lines = [f"B = {other.name} vs A = {base.name}; A's setting: {_describe(base.setting)}"]
    if other.setting != base.setting:
        lines.append(f"B's setting differs: {_describe(other.setting)}")
    rows = [("metric", "A", "B", "B/A", "change")]
    for label, values in comparison["metrics"].items():
        as_text = (lambda v: f"{v:,}") if label == "params" else compute_text
        rows.append(
            (
                label,
                as_text(values["A"]),
                as_text(values["B"]),
                f"{values['ratio']:.3f}",
                f"{values['change_percent']:+.1f}%",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )
    return "\n".join(lines)
