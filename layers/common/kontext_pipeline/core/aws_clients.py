"""Typed boto3 clients, each made on first use and then kept: one descriptor per service
on the class that owns them (the functions' Runtime, the CLI's Aws, the local run's clients).

    class Runtime:
        s3: ClassVar[AwsClient[S3Client]] = AwsClient("s3")

        def make_client(self, service: str) -> object:
            return boto3.client(service, config=BOTO_CONFIG)

`runtime.s3` is then an `S3Client` to mypy, without an `Any` in sight of the callers, and
a function that never touches S3 never pays for building its client.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar, cast, overload

ClientT = TypeVar("ClientT")


class ClientMaker(Protocol):
    """The owner of the clients: how it makes one (session, region, retries, timeouts)."""

    def make_client(self, service: str) -> object: ...


class AwsClient(Generic[ClientT]):
    """A client of one service, made by its owner's `make_client` when first read."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.name = service

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, maker: None, owner: type) -> AwsClient[ClientT]: ...

    @overload
    def __get__(self, maker: ClientMaker, owner: type) -> ClientT: ...

    def __get__(self, maker: ClientMaker | None, owner: type) -> AwsClient[ClientT] | ClientT:
        if maker is None:
            return self
        kept = maker.__dict__
        if self.name not in kept:
            kept[self.name] = maker.make_client(self.service)
        return cast("ClientT", kept[self.name])
