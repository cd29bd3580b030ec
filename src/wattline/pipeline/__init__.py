"""normalize -> validate -> store -> ledger -> aggregate -> roll up."""

from wattline.pipeline.ingest import IngestResult, Pipeline

__all__ = ["IngestResult", "Pipeline"]
