"""DynamoDB values and expressions, evaluated with DynamoDB's semantics."""

from .lang import (
    KeyCondition,
    apply_update,
    check_condition,
    parse_key_condition,
    parse_projection,
    project,
    validate_placeholders,
)
from .values import (
    deserialize_item,
    encode_item,
    from_dynamo,
    item_size,
    normalize,
    normalize_item,
    prepare_item,
    serialize_item,
    sort_key_bytes,
    to_dynamo,
    type_name,
)

__all__ = [
    "KeyCondition",
    "apply_update",
    "check_condition",
    "deserialize_item",
    "encode_item",
    "from_dynamo",
    "item_size",
    "normalize",
    "normalize_item",
    "parse_key_condition",
    "parse_projection",
    "prepare_item",
    "project",
    "serialize_item",
    "sort_key_bytes",
    "to_dynamo",
    "type_name",
    "validate_placeholders",
]
