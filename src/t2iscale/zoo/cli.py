"""`t2iscale zoo`: placeholder until the zoo lands."""


def register(subparsers):
    pass
