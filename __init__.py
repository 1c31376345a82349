"""panthor-testbed: a schedulable model of the Linux Panthor MMU / VM_BIND code."""

__version__ = "0.1.0"
