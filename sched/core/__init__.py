"""The executor: simulated threads on Trio, the choices, virtual time, findings, trace."""
