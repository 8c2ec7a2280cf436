"""Where the pipeline listens and where it writes: the input prefix, the output prefix and
bucket. Only objects under the input prefix become jobs, and never the pipeline's own
outputs or a prompt sidecar: this is the recursion guard (AWS's recursion detection does
not see loops through Step Functions). The trigger, the backfill and CollectOutputs share it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.storage.inspection import SIDECAR_SUFFIXES


@dataclass(frozen=True)
class EditScope:
    """Which objects become jobs, and where their outputs go."""

    input_prefix: str
    output_prefix: str
    output_bucket: str | None = None

    def skip_reason(self, source: SourceObject) -> str | None:
        """Why an object must not become a job, or None. This is the recursion guard in code."""
        if not source.key.startswith(self.input_prefix):
            return f"outside the input prefix {self.input_prefix!r}"
        output_bucket = self.output_bucket or source.bucket
        if output_bucket == source.bucket and source.key.startswith(self.output_prefix):
            return "written by this pipeline (output prefix): never processed again"
        if source.key.endswith("/"):
            return "a folder marker"
        if source.key.lower().endswith(SIDECAR_SUFFIXES):
            return "a prompt sidecar, read by the job of the image it belongs to"
        return None

    def output_bucket_for(self, source: SourceObject) -> str:
        return self.output_bucket or source.bucket
