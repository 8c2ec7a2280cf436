"""The emulated AWS account of a local run: its id, region and credentials, and typed
boto3 clients of a session in it."""

from __future__ import annotations

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


class AwsClients:
    """The clients of one boto3 session, each in the emulated region."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session

    def client(self, service: str) -> BaseClient:
        return self._session.client(service, region_name=REGION)  # type: ignore[no-any-return]

    def s3(self) -> S3Client:
        return cast("S3Client", self.client("s3"))

    def sns(self) -> SNSClient:
        return cast("SNSClient", self.client("sns"))

    def sqs(self) -> SQSClient:
        return cast("SQSClient", self.client("sqs"))

    def secretsmanager(self) -> SecretsManagerClient:
        return cast("SecretsManagerClient", self.client("secretsmanager"))

    def iam(self) -> IAMClient:
        return cast("IAMClient", self.client("iam"))

    def lambda_(self) -> LambdaClient:
        return cast("LambdaClient", self.client("lambda"))

    def stepfunctions(self) -> SFNClient:
        return cast("SFNClient", self.client("stepfunctions"))

    def dynamodb(self) -> DynamoDBClient:
        return cast("DynamoDBClient", self.client("dynamodb"))

    def cloudwatch(self) -> CloudWatchClient:
        return cast("CloudWatchClient", self.client("cloudwatch"))

    def events(self) -> EventBridgeClient:
        return cast("EventBridgeClient", self.client("events"))

    def cloudformation(self) -> CloudFormationClient:
        return cast("CloudFormationClient", self.client("cloudformation"))
