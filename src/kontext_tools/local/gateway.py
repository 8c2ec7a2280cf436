"""Lambda function URLs, locally: an HTTP server on 127.0.0.1 that turns each request into a
function URL event (payload format 2.0), invokes the function through the (moto) Lambda
API, and answers with the function's response, as the function URL service does.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from werkzeug import Request, Response

from kontext_tools.loopback import LoopbackServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from types_boto3_lambda.client import LambdaClient
    from types_boto3_lambda.type_defs import InvocationResponseTypeDef


class FunctionUrlGateway:
    def __init__(self, lambda_client: LambdaClient) -> None:
        self._lambda = lambda_client
        self._functions: dict[str, str] = {}  # path segment -> function name
        self._server = LoopbackServer.for_wsgi(self._serve)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def start(self) -> FunctionUrlGateway:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def url_for(self, function_name: str) -> str:
        segment = function_name.rsplit(":", 1)[-1]
        self._functions[segment] = function_name
        return f"{self.base_url}/{segment}/"

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        segment, _, rest = request.path.lstrip("/").partition("/")
        function_name = self._functions.get(segment)
        if function_name is None:
            return Response("no function URL here", 404)(environ, start_response)
        event = function_url_event(request, "/" + rest, url_id=segment)
        answer = self._lambda.invoke(FunctionName=function_name, Payload=json.dumps(event))
        status, headers, text = _http_answer(answer)
        headers = {name: str(value) for name, value in headers.items()}
        return Response(text, status, headers=headers)(environ, start_response)


def function_url_event(request: Request, path: str, *, url_id: str) -> dict[str, Any]:
    """The request as the function URL service hands it to the function (payload format
    2.0, every field AWS sets: the Lambda developer guide's "Request payload format")."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": request.query_string.decode("latin-1"),
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": request.host,
            "domainPrefix": url_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "http": {
                "method": request.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
            "requestId": str(uuid.uuid4()),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(request.get_data()).decode(),
        "isBase64Encoded": True,
    }


def _http_answer(answer: InvocationResponseTypeDef) -> tuple[int, dict[str, Any], str]:
    """(status, headers, body) of the function's response, as the service answers it."""
    result = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        # As the service answers: the error and its stack trace stay in the function's logs.
        return 502, {"Content-Type": "text/plain"}, "Internal Server Error"
    if isinstance(result, dict) and "statusCode" in result:
        return int(result["statusCode"]), result.get("headers") or {}, str(result.get("body", ""))
    return 200, {"Content-Type": "application/json"}, json.dumps(result)
