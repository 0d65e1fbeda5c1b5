"""Reports drawn from results: plots of sweeps and trials."""
