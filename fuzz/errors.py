"""Errors of the fuzz layer that are the user's input, not a finding or a bug.

Kept free of heavy imports: the CLI catches these before it has loaded the
model, and turns each into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad usage or bad input: one line for the user, exit status 2."""


class ReplayFileError(InputError):
    """The file cannot be replayed (malformed, out of range, or does not fit the run)."""


class ScenarioError(InputError):
    """Bad scenario name or parameter."""


class ShrinkError(InputError):
    """The replay file cannot be shrunk (it does not reproduce its failure)."""


class OutputError(InputError):
    """A path the command must write to is unusable."""


def check_output_file(path: str, what: str) -> None:
    """Fail early (before minutes of work) if ``path`` cannot be written as a file.

    A probe, not a permission check (root passes every ``os.access``): the
    parent directories are created, and the file is opened for appending
    (and removed again if the probe created it).
    """
    if not path:
        raise OutputError(f"{what}: empty path")
    if os.path.isdir(path):
        raise OutputError(f"{what} {path}: is a directory")
    existed = os.path.exists(path)
    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot write: {describe_os_error(exc)}") from None
    if not existed:
        os.remove(path)


def check_output_dir(path: str, what: str) -> bool:
    """Make sure ``path`` is a directory we can write into; True if it was created."""
    if not path:
        raise OutputError(f"{what}: empty path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{what} {path}: exists and is not a directory")
    created = not os.path.exists(path)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".panthor-testbed-probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot write there: {describe_os_error(exc)}") from None
    return created


def remove_if_empty(path: str) -> None:
    """Undo :func:`check_output_dir`'s creation when nothing was written."""
    try:
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    except OSError:
        pass


def describe_os_error(exc: OSError) -> str:
    """``[Errno 2] No such file or directory: 'x'`` -> ``No such file or directory``."""
    return exc.strerror or str(exc)
