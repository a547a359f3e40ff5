"""Reports: a benchmark's HTML/Markdown report (tables, crops, plots), image comparisons, training runs.

``write_report(results)`` draws a :class:`~restorekit.eval.results.BenchmarkResults` into its folder:
``report.html`` (self-contained), ``report.md`` + ``images/``. Reports only read results and files:
nothing here runs a model (the benchmark stored the crops it shows).

- :mod:`.tables`: the tables as display strings; :mod:`.html`, :mod:`.markdown`: the two renderers;
- :mod:`.crops`: the crop strips; :mod:`.plots`: scatter plots; :mod:`.draw`: pixels and fonts;
- :mod:`.benchmark`: a benchmark folder's report; :mod:`.compare`: two images; :mod:`.training`: a run.
"""

from __future__ import annotations

from .benchmark import report_benchmark_dir, report_folder, write_report
from .compare import Comparison, compare_images
from .tables import Table, group_title, per_image_table, protocol_notes, summary_table
from .training import report_run

__all__ = ["write_report", "report_benchmark_dir", "report_folder", "compare_images", "Comparison", "report_run",
           "summary_table", "per_image_table", "protocol_notes", "group_title", "Table"]
