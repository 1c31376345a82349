"""Register offsets and field values of ``drivers/gpu/drm/panthor/panthor_regs.h`` (v6.14).

Only the registers panthor_mmu.c and the reset/IRQ paths it depends on touch
are listed. In this era the 64-bit AS registers are accessed as ``_LO``/``_HI``
32-bit halves (the 64-bit accessors came in v6.15), exactly as the seed does.

The exception codes are ``enum drm_panthor_exception_type`` of
``panthor_device.h``; :func:`panthor_exception_name` mirrors the kernel's table
for the MMU faults (anything else is "Unknown exception type").
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- GPU control

GPU_ID: Final = 0x0
GPU_L2_FEATURES: Final = 0x4
GPU_CORE_FEATURES: Final = 0x8
GPU_TILER_FEATURES: Final = 0xC
GPU_MEM_FEATURES: Final = 0x10
GROUPS_L2_COHERENT: Final = 1 << 0

GPU_MMU_FEATURES: Final = 0x14
GPU_AS_PRESENT: Final = 0x18
GPU_CSF_ID: Final = 0x1C


def GPU_MMU_FEATURES_VA_BITS(x: int) -> int:
    """``GPU_MMU_FEATURES_VA_BITS(x)``: bits 7:0."""
    return x & 0xFF


def GPU_MMU_FEATURES_PA_BITS(x: int) -> int:
    """``GPU_MMU_FEATURES_PA_BITS(x)``: bits 15:8."""
    return (x >> 8) & 0xFF


GPU_INT_RAWSTAT: Final = 0x20
GPU_INT_CLEAR: Final = 0x24
GPU_INT_MASK: Final = 0x28
GPU_INT_STAT: Final = 0x2C
GPU_IRQ_FAULT: Final = 1 << 0
GPU_IRQ_PROTM_FAULT: Final = 1 << 1
GPU_IRQ_RESET_COMPLETED: Final = 1 << 8
GPU_IRQ_POWER_CHANGED: Final = 1 << 9
GPU_IRQ_POWER_CHANGED_ALL: Final = 1 << 10
GPU_IRQ_CLEAN_CACHES_COMPLETED: Final = 1 << 17
GPU_IRQ_DOORBELL_MIRROR: Final = 1 << 18
GPU_IRQ_MCU_STATUS_CHANGED: Final = 1 << 19

GPU_CMD: Final = 0x30


def GPU_CMD_DEF(type_: int, payload: int) -> int:
    """``GPU_CMD_DEF(type, payload)``."""
    return type_ | (payload << 8)


GPU_SOFT_RESET: Final = GPU_CMD_DEF(1, 1)
GPU_HARD_RESET: Final = GPU_CMD_DEF(1, 2)

GPU_STATUS: Final = 0x34
GPU_STATUS_ACTIVE: Final = 1 << 0


def GPU_FLUSH_CACHES(l2: int, lsc: int, oth: int) -> int:
    """``GPU_FLUSH_CACHES(l2, lsc, oth)``."""
    return GPU_CMD_DEF(4, l2 | (lsc << 4) | (oth << 8))


CACHE_CLEAN: Final = 1 << 0
CACHE_INV: Final = 1 << 1

GPU_FAULT_STATUS: Final = 0x3C
GPU_FAULT_ADDR_LO: Final = 0x40
GPU_FAULT_ADDR_HI: Final = 0x44

GPU_SHADER_PRESENT_LO: Final = 0x100
GPU_TILER_PRESENT_LO: Final = 0x110
GPU_L2_PRESENT_LO: Final = 0x120
SHADER_READY_LO: Final = 0x140
TILER_READY_LO: Final = 0x150
L2_READY_LO: Final = 0x160
SHADER_PWRON_LO: Final = 0x180
TILER_PWRON_LO: Final = 0x190
L2_PWRON_LO: Final = 0x1A0
SHADER_PWROFF_LO: Final = 0x1C0
TILER_PWROFF_LO: Final = 0x1D0
L2_PWROFF_LO: Final = 0x1E0
SHADER_PWRTRANS_LO: Final = 0x200
TILER_PWRTRANS_LO: Final = 0x210
L2_PWRTRANS_LO: Final = 0x220

GPU_COHERENCY_FEATURES: Final = 0x300

MCU_CONTROL: Final = 0x700
MCU_CONTROL_ENABLE: Final = 1
MCU_CONTROL_AUTO: Final = 2
MCU_CONTROL_DISABLE: Final = 0
MCU_STATUS: Final = 0x704
MCU_STATUS_DISABLED: Final = 0
MCU_STATUS_ENABLED: Final = 1
MCU_STATUS_HALT: Final = 2
MCU_STATUS_FATAL: Final = 3

# ---------------------------------------------------------------- JOB interrupts, CSF doorbells

JOB_INT_RAWSTAT: Final = 0x1000
JOB_INT_CLEAR: Final = 0x1004
JOB_INT_MASK: Final = 0x1008
JOB_INT_STAT: Final = 0x100C
JOB_INT_GLOBAL_IF: Final = 1 << 31


def JOB_INT_CSG_IF(x: int) -> int:
    """``JOB_INT_CSG_IF(x)``: the interrupt bit of CSG slot ``x``."""
    return 1 << x


CSF_GPU_LATEST_FLUSH_ID: Final = 0x10000
CSF_DOORBELL_BASE: Final = 0x80000
CSF_DOORBELL_STRIDE: Final = 0x10000
CSF_GLB_DOORBELL_ID: Final = 0


def CSF_DOORBELL(i: int) -> int:
    """``CSF_DOORBELL(i)``: doorbell ``i`` (0 is the global interface's)."""
    return CSF_DOORBELL_BASE + i * CSF_DOORBELL_STRIDE


# ---------------------------------------------------------------- MMU

MMU_INT_RAWSTAT: Final = 0x2000
MMU_INT_CLEAR: Final = 0x2004
MMU_INT_MASK: Final = 0x2008
MMU_INT_STAT: Final = 0x200C

MMU_BASE: Final = 0x2400
MMU_AS_SHIFT: Final = 6
MAX_AS_SLOTS: Final = 32  # panthor_mmu.c's MAX_AS_SLOTS (the size of the slots array)


def MMU_AS(as_nr: int) -> int:
    """``MMU_AS(as)``: base of the register block of address space ``as_nr``."""
    return MMU_BASE + (as_nr << MMU_AS_SHIFT)


def AS_TRANSTAB_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x0


def AS_TRANSTAB_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x4


def AS_MEMATTR_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x8


def AS_MEMATTR_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0xC


def AS_LOCKADDR_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x10


def AS_LOCKADDR_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x14


def AS_COMMAND(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x18


def AS_FAULTSTATUS(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x1C


def AS_FAULTADDRESS_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x20


def AS_FAULTADDRESS_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x24


def AS_STATUS(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x28


def AS_TRANSCFG_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x30


def AS_TRANSCFG_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x34


def AS_FAULTEXTRA_LO(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x38


def AS_FAULTEXTRA_HI(as_nr: int) -> int:
    return MMU_AS(as_nr) + 0x3C


# AS_MEMATTR attribute bytes
AS_MEMATTR_AARCH64_INNER_ALLOC_IMPL: Final = 2 << 2


def AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(w: bool | int, r: bool | int) -> int:
    """``AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(w, r)``."""
    return (3 << 2) | (1 if w else 0) | (2 if r else 0)


AS_MEMATTR_AARCH64_SH_MIDGARD_INNER: Final = 0 << 4
AS_MEMATTR_AARCH64_SH_CPU_INNER: Final = 1 << 4
AS_MEMATTR_AARCH64_SH_CPU_INNER_SHADER_COH: Final = 2 << 4
AS_MEMATTR_AARCH64_SHARED: Final = 0 << 6
AS_MEMATTR_AARCH64_INNER_OUTER_NC: Final = 1 << 6
AS_MEMATTR_AARCH64_INNER_OUTER_WB: Final = 2 << 6
AS_MEMATTR_AARCH64_FAULT: Final = 3 << 6

# AS_COMMAND values
AS_COMMAND_NOP: Final = 0
AS_COMMAND_UPDATE: Final = 1
AS_COMMAND_LOCK: Final = 2
AS_COMMAND_UNLOCK: Final = 3
AS_COMMAND_FLUSH_PT: Final = 4
AS_COMMAND_FLUSH_MEM: Final = 5
AS_LOCK_REGION_MIN_SIZE: Final = 1 << 15

AS_COMMAND_NAMES: Final = {
    AS_COMMAND_NOP: "NOP",
    AS_COMMAND_UPDATE: "UPDATE",
    AS_COMMAND_LOCK: "LOCK",
    AS_COMMAND_UNLOCK: "UNLOCK",
    AS_COMMAND_FLUSH_PT: "FLUSH_PT",
    AS_COMMAND_FLUSH_MEM: "FLUSH_MEM",
}

# AS_FAULTSTATUS fields
AS_FAULTSTATUS_ACCESS_TYPE_MASK: Final = 0x3 << 8
AS_FAULTSTATUS_ACCESS_TYPE_ATOMIC: Final = 0x0 << 8
AS_FAULTSTATUS_ACCESS_TYPE_EX: Final = 0x1 << 8
AS_FAULTSTATUS_ACCESS_TYPE_READ: Final = 0x2 << 8
AS_FAULTSTATUS_ACCESS_TYPE_WRITE: Final = 0x3 << 8

# AS_STATUS
AS_STATUS_AS_ACTIVE: Final = 1 << 0

# AS_TRANSCFG
AS_TRANSCFG_ADRMODE_UNMAPPED: Final = 1 << 0
AS_TRANSCFG_ADRMODE_IDENTITY: Final = 2 << 0
AS_TRANSCFG_ADRMODE_AARCH64_4K: Final = 6 << 0
AS_TRANSCFG_ADRMODE_AARCH64_64K: Final = 8 << 0
AS_TRANSCFG_ADRMODE_MASK: Final = 0xF


def AS_TRANSCFG_INA_BITS(x: int) -> int:
    """``AS_TRANSCFG_INA_BITS(x)``: panthor writes ``55 - va_bits``."""
    return x << 6


def AS_TRANSCFG_OUTA_BITS(x: int) -> int:
    return x << 14


AS_TRANSCFG_SL_CONCAT: Final = 1 << 22
AS_TRANSCFG_PTW_MEMATTR_NC: Final = 1 << 24
AS_TRANSCFG_PTW_MEMATTR_WB: Final = 2 << 24
AS_TRANSCFG_PTW_SH_NS: Final = 0 << 28
AS_TRANSCFG_PTW_SH_OS: Final = 2 << 28
AS_TRANSCFG_PTW_SH_IS: Final = 3 << 28
AS_TRANSCFG_PTW_RA: Final = 1 << 30
AS_TRANSCFG_DISABLE_HIER_AP: Final = 1 << 33
AS_TRANSCFG_DISABLE_AF_FAULT: Final = 1 << 34
AS_TRANSCFG_WXN: Final = 1 << 35
AS_TRANSCFG_XREADABLE: Final = 1 << 36

# ---------------------------------------------------------------- exception codes

DRM_PANTHOR_EXCEPTION_OK: Final = 0x00
DRM_PANTHOR_EXCEPTION_GPU_BUS_FAULT: Final = 0x80
DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0: Final = 0xC0
DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_1: Final = 0xC1
DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_2: Final = 0xC2
DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_3: Final = 0xC3
DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_4: Final = 0xC4
DRM_PANTHOR_EXCEPTION_PERM_FAULT_0: Final = 0xC8
DRM_PANTHOR_EXCEPTION_PERM_FAULT_1: Final = 0xC9
DRM_PANTHOR_EXCEPTION_PERM_FAULT_2: Final = 0xCA
DRM_PANTHOR_EXCEPTION_PERM_FAULT_3: Final = 0xCB
DRM_PANTHOR_EXCEPTION_ACCESS_FLAG_1: Final = 0xD9
DRM_PANTHOR_EXCEPTION_ACCESS_FLAG_2: Final = 0xDA
DRM_PANTHOR_EXCEPTION_ACCESS_FLAG_3: Final = 0xDB
DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_IN: Final = 0xE0
DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT0: Final = 0xE4
DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT1: Final = 0xE5
DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT2: Final = 0xE6
DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT3: Final = 0xE7
DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_0: Final = 0xE8
DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_1: Final = 0xE9
DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_2: Final = 0xEA
DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_3: Final = 0xEB

DRM_PANTHOR_EXCEPTION_TERMINATED: Final = 0x04
DRM_PANTHOR_EXCEPTION_KABOOM: Final = 0x05
DRM_PANTHOR_EXCEPTION_EUREKA: Final = 0x06
DRM_PANTHOR_EXCEPTION_ACTIVE: Final = 0x08
DRM_PANTHOR_EXCEPTION_CS_RES_TERM: Final = 0x0F
DRM_PANTHOR_EXCEPTION_CS_CONFIG_FAULT: Final = 0x40
DRM_PANTHOR_EXCEPTION_CS_UNRECOVERABLE: Final = 0x41
DRM_PANTHOR_EXCEPTION_CS_ENDPOINT_FAULT: Final = 0x44
DRM_PANTHOR_EXCEPTION_CS_BUS_FAULT: Final = 0x48
DRM_PANTHOR_EXCEPTION_CS_INSTR_INVALID: Final = 0x49
DRM_PANTHOR_EXCEPTION_CS_CALL_STACK_OVERFLOW: Final = 0x4A
DRM_PANTHOR_EXCEPTION_CS_INHERIT_FAULT: Final = 0x4B

_EXCEPTION_NAMES: Final = {
    DRM_PANTHOR_EXCEPTION_OK: "OK",
    DRM_PANTHOR_EXCEPTION_TERMINATED: "TERMINATED",
    DRM_PANTHOR_EXCEPTION_KABOOM: "KABOOM",
    DRM_PANTHOR_EXCEPTION_EUREKA: "EUREKA",
    DRM_PANTHOR_EXCEPTION_ACTIVE: "ACTIVE",
    DRM_PANTHOR_EXCEPTION_CS_RES_TERM: "CS_RES_TERM",
    DRM_PANTHOR_EXCEPTION_CS_CONFIG_FAULT: "CS_CONFIG_FAULT",
    DRM_PANTHOR_EXCEPTION_CS_UNRECOVERABLE: "CS_UNRECOVERABLE",
    DRM_PANTHOR_EXCEPTION_CS_ENDPOINT_FAULT: "CS_ENDPOINT_FAULT",
    DRM_PANTHOR_EXCEPTION_CS_BUS_FAULT: "CS_BUS_FAULT",
    DRM_PANTHOR_EXCEPTION_CS_INSTR_INVALID: "CS_INSTR_INVALID",
    DRM_PANTHOR_EXCEPTION_CS_CALL_STACK_OVERFLOW: "CS_CALL_STACK_OVERFLOW",
    DRM_PANTHOR_EXCEPTION_CS_INHERIT_FAULT: "CS_INHERIT_FAULT",
    DRM_PANTHOR_EXCEPTION_GPU_BUS_FAULT: "GPU_BUS_FAULT",
    **{DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0 + i: f"TRANSLATION_FAULT_{i}" for i in range(5)},
    **{DRM_PANTHOR_EXCEPTION_PERM_FAULT_0 + i: f"PERM_FAULT_{i}" for i in range(4)},
    **{DRM_PANTHOR_EXCEPTION_ACCESS_FLAG_1 + i: f"ACCESS_FLAG_{i + 1}" for i in range(3)},
    DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_IN: "ADDR_SIZE_FAULT_IN",
    **{DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT0 + i: f"ADDR_SIZE_FAULT_OUT{i}" for i in range(4)},
    **{DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_0 + i: f"MEM_ATTR_FAULT_{i}" for i in range(4)},
}


def panthor_exception_name(exception_code: int) -> str:
    """``panthor_exception_name()`` for the codes the MMU raises."""
    return _EXCEPTION_NAMES.get(exception_code, "Unknown exception type")


# AS_FAULTSTATUS access types, by name (what the fault handler's access_type_name() prints)
ACCESS_TYPE_NAMES: Final = {0: "ATOMIC", 1: "EXECUTE", 2: "READ", 3: "WRITE"}
