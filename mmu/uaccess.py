"""Fake user memory and the uaccess helpers the ioctls use (include/linux/uaccess.h).

A :class:`UserMm` is one process's address space: anonymous mappings made
with :meth:`UserMm.mmap`, read and written by "user space" directly
(:meth:`UserMm.write`, :meth:`UserMm.put_array`, ...) and by the kernel only
through :func:`copy_from_user`, :func:`copy_to_user`, :func:`clear_user`,
:func:`check_zeroed_user` and :func:`copy_struct_from_user`, which fault
(-EFAULT, or the count of bytes not copied, as the kernel's) on any byte
outside a mapping, on a NULL page, or past the top of the address space.

Each helper is a yield point: the kernel may sleep on a page fault, and
another user thread may write the memory between two copies (a re-read of a
user struct can see different bytes, as in the kernel).

The model has no processes: a DRM file's ioctls run in the address space of
the process that opened it (``current->mm`` is the file's :class:`UserMm`).
A failed copy leaves the kernel buffer's contents unspecified; callers here
free it, as the kernel's do.
"""

from __future__ import annotations

from typing import Any, Final

from ..sched.core.kernel import preempt
from ..sched.errno import E2BIG, EFAULT
from .panthor_drm import drm_panthor_obj_array, uapi_from_bytes, uapi_sizeof, uapi_to_bytes

PAGE_SIZE: Final = 4096
U64_MAX: Final = (1 << 64) - 1
# Where mmap() starts placing mappings, and how much a process may map (the
# model keeps user memory small so a fuzzer cannot exhaust the host).
USER_MMAP_BASE: Final = 0x7F00_0000_0000
USER_MM_LIMIT: Final = 64 << 20


class UserMm:
    """One process's user address space (``struct mm_struct``, as far as uaccess needs)."""

    def __init__(self, name: str = "mm") -> None:
        self.name = name
        self.maps: dict[int, bytearray] = {}  # start -> bytes, never overlapping
        self.next_addr = USER_MMAP_BASE
        self.mapped = 0

    def __repr__(self) -> str:
        return f"<user mm {self.name} {len(self.maps)} maps>"

    # ---------------------------------------------------------- user-space side

    def mmap(self, size: int) -> int:
        """``mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_ANONYMOUS)``: a zeroed mapping's address.

        Mappings are page-aligned with an unmapped guard page between them.
        """
        if size <= 0:
            raise ValueError("mmap of a non-positive size")
        size = (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        if self.mapped + size > USER_MM_LIMIT:
            raise MemoryError(f"{self.name}: the model's user memory limit is {USER_MM_LIMIT}")
        addr = self.next_addr
        self.maps[addr] = bytearray(size)
        self.next_addr = addr + size + PAGE_SIZE
        self.mapped += size
        return addr

    def munmap(self, addr: int) -> None:
        """Drop the mapping starting at ``addr``."""
        buf = self.maps.pop(addr)
        self.mapped -= len(buf)

    def _find(self, addr: int, n: int) -> tuple[bytearray, int] | None:
        """The mapping holding all of ``[addr, addr + n)`` and the offset in it."""
        if addr < 0 or n < 0 or addr + n > U64_MAX + 1:
            return None
        for start in sorted(self.maps):
            buf = self.maps[start]
            if start <= addr and addr + n <= start + len(buf):
                return buf, addr - start
        return None

    def _mapped_prefix(self, addr: int, n: int) -> int:
        """How many bytes from ``addr`` are readable (mappings are never adjacent)."""
        if n == 0:
            return 0
        for start in sorted(self.maps):
            buf = self.maps[start]
            if start <= addr < start + len(buf):
                return min(n, start + len(buf) - addr)
        return 0

    def write(self, addr: int, data: bytes) -> None:
        """A user-space store."""
        found = self._find(addr, len(data))
        if found is None:
            raise ValueError(f"{self.name}: store to unmapped {addr:#x}+{len(data)}")
        buf, off = found
        buf[off : off + len(data)] = data

    def read(self, addr: int, n: int) -> bytes:
        """A user-space load."""
        found = self._find(addr, n)
        if found is None:
            raise ValueError(f"{self.name}: load from unmapped {addr:#x}+{n}")
        buf, off = found
        return bytes(buf[off : off + n])

    def put_struct(self, obj: Any, addr: int | None = None) -> int:
        """Store a uAPI struct (at ``addr``, or in a new mapping); its address."""
        data = uapi_to_bytes(obj)
        if data is None:
            raise TypeError(f"{obj!r} has a field that is not an integer")
        if addr is None:
            addr = self.mmap(len(data))
        self.write(addr, data)
        return addr

    def get_struct(self, cls: type[Any], addr: int) -> Any:
        """Load a uAPI struct."""
        return uapi_from_bytes(cls, self.read(addr, uapi_sizeof(cls)))

    def put_array(
        self, objs: list[Any], stride: int | None = None, *, tail: bytes = b""
    ) -> drm_panthor_obj_array:
        """Store structs ``stride`` bytes apart in a new mapping; the ``drm_panthor_obj_array``.

        A stride smaller than the struct truncates each element (an older uAPI
        header); a larger one pads it with ``tail`` then zeros (a newer header).
        An empty list gives ``{stride, 0, 0}``.
        """
        if not objs:
            return drm_panthor_obj_array(stride=stride or 0, count=0, array=0)
        raw: list[bytes] = []
        for obj in objs:
            data = uapi_to_bytes(obj)
            if data is None:
                raise TypeError(f"{obj!r} has a field that is not an integer")
            raw.append(data)
        size = len(raw[0])
        stride = size if stride is None else stride
        addr = self.mmap(max(1, stride * len(objs)))
        for i, data in enumerate(raw):
            elem = (data + tail)[:stride].ljust(stride, b"\0")
            self.write(addr + i * stride, elem)
        return drm_panthor_obj_array(stride=stride, count=len(objs), array=addr)

    def put_u32s(self, values: list[int]) -> int:
        """Store a ``__u32`` array; its address (0 for an empty list)."""
        if not values:
            return 0
        addr = self.mmap(4 * len(values))
        self.write(addr, b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in values))
        return addr

    def put_u64s(self, values: list[int]) -> int:
        """Store a ``__u64`` array; its address (0 for an empty list)."""
        if not values:
            return 0
        addr = self.mmap(8 * len(values))
        self.write(addr, b"".join((v & U64_MAX).to_bytes(8, "little") for v in values))
        return addr


# -------------------------------------------------------------- kernel side


async def copy_from_user(mm: UserMm, from_: int, n: int) -> tuple[int, bytes]:
    """``copy_from_user(to, from, n)``: ``(bytes not copied, data)``.

    On a fault the data is empty (the kernel zero-fills the uncopied tail of
    its buffer; every caller here then frees it).
    """
    await preempt()  # might_fault(): may sleep, and user space runs meanwhile
    found = mm._find(from_, n)
    if found is None:
        return n - mm._mapped_prefix(from_, n), b""
    buf, off = found
    return 0, bytes(buf[off : off + n])


async def copy_to_user(mm: UserMm, to: int, data: bytes) -> int:
    """``copy_to_user(to, from, n)``: the number of bytes not copied.

    On a fault, the bytes that fit before the first unmapped one are written.
    """
    await preempt()
    n = len(data)
    found = mm._find(to, n)
    if found is None:
        done = mm._mapped_prefix(to, n)
        if done:
            mm.write(to, data[:done])
        return n - done
    buf, off = found
    buf[off : off + n] = data
    return 0


async def clear_user(mm: UserMm, to: int, n: int) -> int:
    """``clear_user(to, n)``: the number of bytes not cleared."""
    await preempt()
    found = mm._find(to, n)
    if found is None:
        done = mm._mapped_prefix(to, n)
        if done:
            mm.write(to, bytes(done))
        return n - done
    buf, off = found
    buf[off : off + n] = bytes(n)
    return 0


async def check_zeroed_user(mm: UserMm, from_: int, size: int) -> int:
    """``check_zeroed_user()``: 1 if all ``size`` bytes are zero, 0 if not, -EFAULT."""
    if size == 0:
        return 1
    await preempt()
    # The kernel reads aligned words in order and stops at the first non-zero
    # one; mappings are page-aligned, so a word is all mapped or all not, and
    # a non-zero byte before the first unmapped word answers 0, not -EFAULT.
    done = mm._mapped_prefix(from_, size)
    if done and any(mm.read(from_, done)):
        return 0
    return 1 if done == size else -EFAULT


async def copy_struct_from_user(mm: UserMm, ksize: int, src: int, usize: int) -> tuple[int, bytes]:
    """``copy_struct_from_user(dst, ksize, src, usize)``: ``(0 | -EFAULT | -E2BIG, ksize bytes)``.

    A user struct smaller than the kernel's is zero-extended; a larger one must
    have a zero tail (-E2BIG otherwise).
    """
    size = min(ksize, usize)
    rest = max(ksize, usize) - size

    # Deal with trailing bytes.
    if usize < ksize:
        pass  # memset(dst + size, 0, rest), below
    elif usize > ksize:
        ret = await check_zeroed_user(mm, src + size, rest)
        if ret <= 0:
            return (ret or -E2BIG), b""

    # Copy the interoperable parts of the struct.
    left, data = await copy_from_user(mm, src, size)
    if left:
        return -EFAULT, b""
    return 0, data + bytes(ksize - size)
