"""mm: kmalloc/kmem_cache with GFP flags, fault injection, poisoning and the leak ledger."""
