"""Measuring models: the one evaluation loop and everything built on it.

- :mod:`.datasets`: named test sets and folders, clean images or (degraded, clean) pairs;
- :mod:`.evaluate`: the evaluation loop (``restorekit eval``, the benchmark, training validation, the
  experiment scripts);
- :mod:`.benchmark`: models × sets × σ, resumable cell by cell; :mod:`.results` holds what it measured;
- :mod:`.speed`: time and memory (``restorekit bench``);
- :mod:`.published`: the papers' numbers and independent re-measurements.
"""
