"""kernel/locking: lockdep, mutexes, spinlocks, ww_mutex, atomics, refcount_t, completions."""
