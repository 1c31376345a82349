"""Deferred execution: workqueues, threaded IRQs, irq_work."""
