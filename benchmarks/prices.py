"""Public on-demand prices used by the cost model (us-east-1, checked 2026-11; see each
service's pricing page). Change them here; every figure is computed from these."""

STEP_FUNCTIONS_PER_TRANSITION = 0.025 / 1000  # Standard workflows
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
S3_PUT_PER_REQUEST = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_GET_PER_REQUEST = 0.0004 / 1000  # GET, HEAD and others
SNS_PER_PUBLISH = 0.50 / 1_000_000
EVENTBRIDGE_PER_EVENT = 1.00 / 1_000_000
DYNAMODB_PER_WRITE = 1.25 / 1_000_000  # on-demand write request unit
DYNAMODB_PER_READ = 0.25 / 1_000_000  # on-demand read request unit
# Lambda bills at least 1 ms per invocation, rounded up to the millisecond.
LAMBDA_MIN_BILLED_SECONDS = 0.001
