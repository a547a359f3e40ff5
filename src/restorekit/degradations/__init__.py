"""Degradation synthesis: pure, seeded functions that turn clean images into degraded ones."""
