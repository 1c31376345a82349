"""The hardware side of the register interface: the GPU's MMU/AS registers, TLBs, GPU accesses."""
