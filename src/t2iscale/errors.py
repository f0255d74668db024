"""The one exception type that reaches a user as a single clear line (see `t2iscale.cli`)."""


class UserError(Exception):
    """Bad input from the user: a config key, a name, a file, a shard, a line.

    The message must name the offending thing and, where possible, say what would be valid.
    The CLI prints it as one line without a traceback (unless `--debug`).
    """
