"""normalize -> validate -> store -> ledger -> aggregate -> roll up."""

from wattline.pipeline.ingest import AfterCommit, IngestResult, Pipeline

__all__ = ["AfterCommit", "IngestResult", "Pipeline"]
