"""drm_debugfs_gpuva_info: the kernel's layout, with stable object stand-ins."""

from __future__ import annotations

from panthor_testbed.gpuvm import (
    DrmGpuva,
    DrmGpuvm,
    SeqFile,
    drm_debugfs_gpuva_info,
    drm_gpuva_init,
    drm_gpuvm_init_va_space,
    gpuva_tree_insert,
)
from panthor_testbed.sched.drm.drm_gem import DrmGemObject
from panthor_testbed.sched.errno import ENODEV

HEADER = (
    " VAs | start              | range              | end                "
    "| object             | object offset\n" + "-" * 109 + "\n"
)


def _vm() -> tuple[DrmGpuvm, DrmGemObject, DrmGemObject]:
    a, b = DrmGemObject(1 << 20, "A"), DrmGemObject(1 << 20, "B")
    vm = DrmGpuvm()
    drm_gpuvm_init_va_space(vm, "panthor-GPU-VM", 0, 1 << 48, 0x8000_0000, 0x1000_0000)
    for addr, rng, obj, off in [
        (0x1000, 0x2000, a, 0x0),
        (0x4000, 0x1000, None, 0x0),
        (0x9000_0000, 0x20_0000, b, 0x1000),
        (0x3000, 0x1000, a, 0x2000),
    ]:
        va = DrmGpuva()
        drm_gpuva_init(va, addr, rng, obj, off)
        assert gpuva_tree_insert(vm, va) == 0
    return vm, a, b


def test_dump_layout_skips_the_reserved_node() -> None:
    vm, _, _ = _vm()
    m = SeqFile()
    assert drm_debugfs_gpuva_info(m, vm) == 0
    assert m.getvalue() == (
        "DRM GPU VA space (panthor-GPU-VM) [0x0000000000000000;0x0001000000000000]\n"
        "Kernel reserved node [0x0000000080000000;0x0000000090000000]\n"
        "\n" + HEADER + "     | 0x0000000000001000 | 0x0000000000002000 | 0x0000000000003000 "
        "| 0x0000000000000001 | 0x0000000000000000\n"
        "     | 0x0000000000003000 | 0x0000000000001000 | 0x0000000000004000 "
        "| 0x0000000000000001 | 0x0000000000002000\n"
        "     | 0x0000000000004000 | 0x0000000000001000 | 0x0000000000005000 "
        "| 0x0000000000000000 | 0x0000000000000000\n"
        "     | 0x0000000090000000 | 0x0000000000200000 | 0x0000000090200000 "
        "| 0x0000000000000002 | 0x0000000000001000\n"
    )


def test_custom_object_pointer_and_enodev() -> None:
    vm, _, _ = _vm()
    m = SeqFile()
    ids = {"A": 0xFFFF0000_00001000, "B": 0xFFFF0000_00002000}
    assert drm_debugfs_gpuva_info(m, vm, obj_ptr=lambda o: ids[getattr(o, "name", "")]) == 0
    assert "| 0xffff000000002000 | 0x0000000000001000\n" in m.getvalue()
    vm.name = None  # after drm_gpuvm_fini
    assert drm_debugfs_gpuva_info(SeqFile(), vm) == -ENODEV
