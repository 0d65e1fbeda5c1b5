"""tfprune's test suite."""
