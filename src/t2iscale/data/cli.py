"""`t2iscale data ...`: build and prepare training data."""

from t2iscale.cli_groups import register_group

# One module per subcommand; each has register(data_subparsers).
SUBCOMMAND_MODULES: list[str] = ["t2iscale.data.shapes_cli", "t2iscale.data.prepare_cli"]


def register(subparsers):
    register_group(subparsers, "data", "build the shapes world, prepare real data", SUBCOMMAND_MODULES)
