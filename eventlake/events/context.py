"""The Lambda context object handlers receive (the Python runtime's attribute names)."""

from __future__ import annotations

import os
import time
from functools import cached_property

from .arns import DEFAULT_ACCOUNT, DEFAULT_REGION, function_arn


def request_id() -> str:
    """A random version-4 UUID in its usual spelling, as Lambda's request ids are; built from
    os.urandom directly (uuid.uuid4() costs a Python object and its checks per invocation)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


_new_request_id = request_id


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
        self._region = region
        self._account = account
        self.aws_request_id = request_id or _new_request_id()
        self._deadline = time.monotonic() + timeout_s

    # Made when a handler asks: most never do, and each costs a string build per invocation.
    @cached_property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name, region=self._region, account=self._account)

    @cached_property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @cached_property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/", time.gmtime()) + f"[$LATEST]{os.urandom(16).hex()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r})"
