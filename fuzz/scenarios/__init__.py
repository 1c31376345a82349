"""Built-in scenarios (importing this package registers them)."""

from . import sched_demos

__all__ = ["sched_demos"]
