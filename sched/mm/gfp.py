"""GFP allocation flags (the subset the model's allocations use)."""

from __future__ import annotations

from typing import Final

__GFP_DIRECT_RECLAIM: Final = 0x400
__GFP_KSWAPD_RECLAIM: Final = 0x800
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_HIGH: Final = 0x20
__GFP_ZERO: Final = 0x100
__GFP_NOWARN: Final = 0x2000
__GFP_NOFAIL: Final = 0x8000
__GFP_NORETRY: Final = 0x10000
__GFP_NOLOCKDEP: Final = 0x800000
__GFP_RECLAIM: Final = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

GFP_ATOMIC: Final = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL: Final = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_NOWAIT: Final = __GFP_KSWAPD_RECLAIM
GFP_NOIO: Final = __GFP_RECLAIM
GFP_NOFS: Final = __GFP_RECLAIM | __GFP_IO


def gfpflags_allow_blocking(gfp: int) -> bool:
    return bool(gfp & __GFP_DIRECT_RECLAIM)


def gfp_name(gfp: int) -> str:
    for name, value in (
        ("GFP_KERNEL", GFP_KERNEL),
        ("GFP_NOFS", GFP_NOFS),
        ("GFP_NOIO", GFP_NOIO),
        ("GFP_ATOMIC", GFP_ATOMIC),
        ("GFP_NOWAIT", GFP_NOWAIT),
    ):
        if gfp & ~(__GFP_ZERO | __GFP_NOWARN | __GFP_NOFAIL | __GFP_NORETRY) == value:
            extra = [
                n
                for n, b in (("__GFP_ZERO", __GFP_ZERO), ("__GFP_NOFAIL", __GFP_NOFAIL))
                if gfp & b
            ]
            return "|".join([name, *extra])
    return hex(gfp)
