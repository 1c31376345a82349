"""drivers/gpu/drm: drm_exec, drm_gem, drm_syncobj and the GPU scheduler (drm_sched)."""
