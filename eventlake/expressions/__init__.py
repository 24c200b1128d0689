"""DynamoDB values and expressions, evaluated with DynamoDB's semantics."""

from .conditions import check_condition, condition_on_missing
from .placeholders import validate_condition_placeholders, validate_placeholders
from .reads import KeyCondition, parse_key_condition, parse_projection, project
from .updates import apply_update, updated_paths
from .values import (
    deserialize_item,
    dump_avs,
    encode_item,
    from_dynamo,
    item_size,
    load_avs,
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
    "condition_on_missing",
    "deserialize_item",
    "dump_avs",
    "encode_item",
    "from_dynamo",
    "item_size",
    "load_avs",
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
    "updated_paths",
    "validate_condition_placeholders",
    "validate_placeholders",
]
