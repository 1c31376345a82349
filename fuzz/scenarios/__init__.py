"""Built-in scenarios: every module named in ``MODULES`` registers its own.

Nothing is imported here: ``panthor-testbed scenarios`` reads the list from
the modules' source (``scenario.builtin_index``) so it need not load the model.
"""

MODULES: tuple[str, ...] = ("sched_demos", "panthor_binds", "panthor_gpu", "panthor_huge")
