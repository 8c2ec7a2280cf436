"""Typed boto3 clients of one session, each made when first used: what the command line
(against a deployed stack) and the local run (against moto) both talk to AWS through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kontext_pipeline.core.aws_clients import AwsClient

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
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


class SessionClients:
    """The session's clients, in its region, with `config` (timeouts, retries) if given."""

    s3: AwsClient[S3Client] = AwsClient("s3")
    sns: AwsClient[SNSClient] = AwsClient("sns")
    sqs: AwsClient[SQSClient] = AwsClient("sqs")
    secretsmanager: AwsClient[SecretsManagerClient] = AwsClient("secretsmanager")
    iam: AwsClient[IAMClient] = AwsClient("iam")
    lambda_: AwsClient[LambdaClient] = AwsClient("lambda")
    stepfunctions: AwsClient[SFNClient] = AwsClient("stepfunctions")
    dynamodb: AwsClient[DynamoDBClient] = AwsClient("dynamodb")
    cloudwatch: AwsClient[CloudWatchClient] = AwsClient("cloudwatch")
    events: AwsClient[EventBridgeClient] = AwsClient("events")
    cloudformation: AwsClient[CloudFormationClient] = AwsClient("cloudformation")

    def __init__(self, session: boto3.Session, config: Config | None = None) -> None:
        self.session = session
        self.config = config

    def make_client(self, service: str) -> object:
        """A client of any service (the fields above are the typed ones)."""
        return self.session.client(service, config=self.config)
