"""`t2iscale eval ...`: generate images for an evaluation prompt set and score them."""

from t2iscale.cli_groups import register_group

# One module per subcommand; each has register(eval_subparsers).
SUBCOMMAND_MODULES: list[str] = [
    "t2iscale.eval.generate_cli",
    "t2iscale.eval.score_cli",
    "t2iscale.eval.oracle_cli",
    # Reads a study, so it lives in `findings` (above `study` in the data flow); only its name is listed here.
    "t2iscale.findings.audit_cli",
]


def register(subparsers):
    register_group(subparsers, "eval", "generate and score evaluation images", SUBCOMMAND_MODULES)
