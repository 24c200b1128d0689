"""ARNs for eventlake resources, in the shapes AWS uses, from a region and an account."""

from __future__ import annotations

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


def stream_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:kinesis:{region}:{account}:stream/{name}"


def table_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def table_stream_arn(
    name: str, label: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT
) -> str:
    return f"{table_arn(name, region=region, account=account)}/stream/{label}"


def queue_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def queue_url(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


def function_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def bucket_arn(name: str) -> str:
    return f"arn:aws:s3:::{name}"


def rule_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    return f"arn:aws:events:{region}:{account}:rule/{name}"
