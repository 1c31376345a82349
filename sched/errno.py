"""Linux errno values and the ERR_PTR convention.

Python's own :mod:`errno` follows the host; the model needs the Linux
numbers so that an ioctl returns exactly what the kernel would.
"""

from __future__ import annotations

from typing import Final, TypeGuard

EPERM: Final = 1
ENOENT: Final = 2
ESRCH: Final = 3
EINTR: Final = 4
EIO: Final = 5
E2BIG: Final = 7
EAGAIN: Final = 11
ENOMEM: Final = 12
EACCES: Final = 13
EFAULT: Final = 14
EBUSY: Final = 16
EEXIST: Final = 17
ENODEV: Final = 19
ENOTTY: Final = 25
EINVAL: Final = 22
ENOSPC: Final = 28
ERANGE: Final = 34
EDEADLK: Final = 35
ETIME: Final = 62
EOPNOTSUPP: Final = 95
ETIMEDOUT: Final = 110
EALREADY: Final = 114
EINPROGRESS: Final = 115
ECANCELED: Final = 125
ERESTARTSYS: Final = 512
ENOTSUPP: Final = 524

MAX_ERRNO: Final = 4095

_NAMES: Final = {
    value: name
    for name, value in sorted(globals().items())
    if name.isupper() and isinstance(value, int) and name != "MAX_ERRNO"
}


def errname(err: int) -> str:
    """Return ``-EINVAL`` style text for a (negative or positive) errno."""
    name = _NAMES.get(abs(err))
    if name is None:
        return str(err)
    return f"-{name}" if err < 0 else name


class ErrPtr:
    """An ``ERR_PTR(-errno)``: a pointer-or-error return value."""

    __slots__ = ("err",)

    def __init__(self, err: int) -> None:
        if not -MAX_ERRNO <= err < 0:
            raise ValueError(f"ERR_PTR needs a negative errno, got {err}")
        self.err = err

    def __repr__(self) -> str:
        return f"ERR_PTR({errname(self.err)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrPtr) and other.err == self.err

    def __hash__(self) -> int:
        return hash(("ErrPtr", self.err))


def ERR_PTR(err: int) -> ErrPtr:
    return ErrPtr(err)


def IS_ERR(ptr: object) -> TypeGuard[ErrPtr]:
    return isinstance(ptr, ErrPtr)


def IS_ERR_OR_NULL(ptr: object) -> bool:
    return ptr is None or isinstance(ptr, ErrPtr)


def PTR_ERR(ptr: ErrPtr) -> int:
    return ptr.err
