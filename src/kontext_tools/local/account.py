"""The emulated AWS account of a local run: its id, region and credentials, and typed
boto3 clients of a session in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import boto3
    from botocore.client import BaseClient
    from types_boto3_cloudformation.client import CloudFormationClient
    from types_boto3_cloudwatch.client import CloudWatchClient
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_iam.client import IAMClient
    from types_boto3_lambda.client import LambdaClient
    from types_boto3_s3.client import S3Client
    from types_boto3_secretsmanager.client import SecretsManagerClient
    from types_boto3_sns.client import SNSClient
    from types_boto3_sqs.client import SQSClient
    from types_boto3_stepfunctions.client import SFNClient

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# Credentials of the emulated account: moto accepts any, real AWS none of these.
EMULATED_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


@dataclass(frozen=True)
class AwsClients:
    """One boto3 session's clients, each in the emulated region."""

    session: boto3.Session
    s3: S3Client
    sns: SNSClient
    sqs: SQSClient
    secretsmanager: SecretsManagerClient
    iam: IAMClient
    lambda_: LambdaClient
    stepfunctions: SFNClient
    dynamodb: DynamoDBClient
    cloudwatch: CloudWatchClient
    events: EventBridgeClient
    cloudformation: CloudFormationClient

    @classmethod
    def of(cls, session: boto3.Session) -> AwsClients:
        def client(service: str) -> BaseClient:
            return session.client(service, region_name=REGION)  # type: ignore[no-any-return]

        return cls(
            session,
            s3=cast("S3Client", client("s3")),
            sns=cast("SNSClient", client("sns")),
            sqs=cast("SQSClient", client("sqs")),
            secretsmanager=cast("SecretsManagerClient", client("secretsmanager")),
            iam=cast("IAMClient", client("iam")),
            lambda_=cast("LambdaClient", client("lambda")),
            stepfunctions=cast("SFNClient", client("stepfunctions")),
            dynamodb=cast("DynamoDBClient", client("dynamodb")),
            cloudwatch=cast("CloudWatchClient", client("cloudwatch")),
            events=cast("EventBridgeClient", client("events")),
            cloudformation=cast("CloudFormationClient", client("cloudformation")),
        )

    def client(self, service: str) -> BaseClient:
        """A client of any service (for what has no field here)."""
        return self.session.client(service, region_name=REGION)  # type: ignore[no-any-return]
