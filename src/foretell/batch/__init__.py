"""Batch prediction: score a whole population from files into a published, exactly-once output.

import foretell.batch
result = foretell.batch.run("churn@production", "customers.parquet", "scores/", home=Path(".foretell"))
"""

from foretell.batch.job import BatchResult, resume, run

__all__ = ["BatchResult", "resume", "run"]
