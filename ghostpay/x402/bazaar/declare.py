"""A seller's Bazaar declaration for its priced routes, as the package's `declare_discovery_extension` builds
it: what `ghost x402 proxy --input-schema/--input-example/--output-schema/--output-example` puts into
`SellerSettings.discovery`.

The extension describes one kind of input: query parameters for GET/HEAD/DELETE routes, a JSON body for
POST/PUT/PATCH ones; the kind follows the routes' methods (routes of both kinds at once are refused: a
facilitator would refuse the declaration for the other kind). The package declares an output by its example;
an output schema describes that example.

    >>> body_type(["POST /translate"]), body_type(["GET /weather", "/free"])
    ('json', None)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from x402.extensions.bazaar import BodyType, OutputConfig, declare_discovery_extension

from ghostpay.exceptions import InvalidArgument

QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_FILE_BYTES = 64 * 1024  # a schema or an example; the declaration rides in every 402 header


def body_type(routes: Sequence[str]) -> BodyType | None:
    """ "json" when the routes that name a method all take a body, None (query) when none does."""
    methods = {r.split(None, 1)[0].upper() for r in routes if len(r.split(None, 1)) == 2}
    if methods & BODY_METHODS and methods & QUERY_METHODS:
        raise InvalidArgument("a discovery declaration describes one kind of input: declare body or query routes")
    return "json" if methods & BODY_METHODS else None


def read_json(path: Path, what: str) -> Any:
    """A JSON file (a schema or an example), as one clean error when it is not."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArgument(f"the {what} {path} is over {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"the {what} {path} is not JSON: {exc}") from None


def declaration(
    routes: Sequence[str],
    *,
    input_schema: dict[str, Any] | None = None,
    input_example: Any = None,
    output_schema: dict[str, Any] | None = None,
    output_example: Any = None,
) -> dict[str, Any]:
    """The `{"bazaar": ...}` extension of these routes (`declare_discovery_extension`)."""
    if output_schema is not None and output_example is None:
        raise InvalidArgument("an output schema describes the output example: give one too")
    for name, schema in (("input", input_schema), ("output", output_schema)):
        if schema is not None and not isinstance(schema, dict):
            raise InvalidArgument(f"the {name} schema must be a JSON object")
    kind = body_type(routes)
    if kind is None and input_example is not None and not isinstance(input_example, dict):
        raise InvalidArgument("the input example of query routes is a JSON object of query parameters")
    output = OutputConfig(example=output_example, schema=output_schema) if output_example is not None else None
    return declare_discovery_extension(input=input_example, input_schema=input_schema, body_type=kind, output=output)
