"""The Lambda context object handlers receive (the Python runtime's attribute names)."""

from __future__ import annotations

import time
import uuid

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, function_arn


class LambdaContext:
    function_version = "$LATEST"
    identity = None
    client_context = None

    def __init__(
        self,
        function_name: str,
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 128,
        request_id: str | None = None,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = function_arn(function_name, region=region, account=account)
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"
