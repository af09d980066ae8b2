"""The one error type of the VM runner: a bad input or environment problem, printed as one line
("fsrace: <what and the fix>") with exit code 2."""


class VmError(Exception):
    pass
