"""Batch prediction: score a whole population from files into a published, exactly-once output.

import foretell.batch
result = foretell.batch.run("churn@production", "customers.parquet", "scores/", home=Path(".foretell"))
"""

from foretell.batch.job import BatchJobFailed, BatchResult, JobInterrupted, resume, run

__all__ = ["BatchJobFailed", "BatchResult", "JobInterrupted", "resume", "run"]
