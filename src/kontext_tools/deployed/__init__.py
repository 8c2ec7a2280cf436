"""Working with a deployed stack: find it, upload an edit, follow a job, fetch its results.

Used by the `kontext-pipeline` command against AWS and by the local run against moto;
every function takes its boto3 clients as arguments.

    stacks.py       the stack: its name, its outputs, the model's API key
    uploads.py      an upload that starts a job: key, content type, metadata, prompt sidecar
    job.py          one job: its execution, where it stands, its results
    recent_jobs.py  recent jobs: status, time, transitions, cost
    teardown.py     the stack deleted, then its images bucket
    redrive.py      the trigger's dead-letter queue handed back to the trigger
"""

from kontext_tools.deployed.job import (
    JobProgress,
    download_results,
    execution_events,
    find_execution,
    job_progress,
)
from kontext_tools.deployed.recent_jobs import EXECUTION_STATUSES, JobSummary, list_jobs
from kontext_tools.deployed.redrive import (
    redrive_dead_letters,
    trigger_function_of,
)
from kontext_tools.deployed.stacks import (
    DeployedStackError,
    StackOutputs,
    find_stack,
    put_api_key,
    stack_name_from_samconfig,
)
from kontext_tools.deployed.teardown import teardown_stack
from kontext_tools.deployed.uploads import (
    UploadContent,
    content_type_for,
    input_key_for,
    prompt_goes_to_sidecar,
    sidecar_key_for,
    upload_image,
)

__all__ = [
    "EXECUTION_STATUSES",
    "DeployedStackError",
    "JobProgress",
    "JobSummary",
    "StackOutputs",
    "UploadContent",
    "content_type_for",
    "download_results",
    "execution_events",
    "find_execution",
    "find_stack",
    "input_key_for",
    "job_progress",
    "list_jobs",
    "prompt_goes_to_sidecar",
    "put_api_key",
    "redrive_dead_letters",
    "sidecar_key_for",
    "stack_name_from_samconfig",
    "teardown_stack",
    "trigger_function_of",
    "upload_image",
]
