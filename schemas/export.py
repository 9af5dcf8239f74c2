"""Write the machine-readable contracts next to this file.

    python -m schemas.export          # regenerate openapi.json, events.schema.json, asyncapi.json

A test regenerates them and fails if the committed files differ, so the published
contracts never drift from the code.
"""

import json
from pathlib import Path
from typing import Any

import msgspec

from events import EVENT_TYPES, DispatchOrder, Envelope, Topics

HERE = Path(__file__).resolve().parent


def event_schemas() -> dict[str, Any]:
    """JSON Schema of the envelope and of every event body, with its type and version."""
    bodies = {name: cls for name, cls in sorted(EVENT_TYPES.items())}
    (envelope, *body_schemas), components = msgspec.json.schema_components(
        [Envelope, *bodies.values(), DispatchOrder], ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jobledger events",
        "description": "Each record on <prefix>.events is the envelope's fields plus "
                       "`data`, the body of the event named by `type` at `version`.",
        "envelope": envelope,
        "events": {name: {"version": cls.VERSION, "data": schema}
                   for (name, cls), schema in zip(bodies.items(), body_schemas, strict=False)},
        "$defs": components,
    }


def asyncapi() -> dict[str, Any]:
    topics = Topics("{prefix}")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "jobledger topics", "version": "1"},
        "channels": {
            "events": {"address": topics.events,
                       "description": "Source of truth, key = job id, kept forever. "
                                      "Apply at most once by (job_id, seq).",
                       "messages": {"event": {"$ref": "events.schema.json"}}},
            "dispatch": {"address": topics.dispatch,
                         "description": "One attempt of one run for an executor, "
                                        "key = run id.",
                         "messages": {"order": {
                             "$ref": "events.schema.json#/$defs/DispatchOrder"}}},
        },
    }


def openapi() -> dict[str, Any]:
    from litestar._openapi.plugin import OpenAPIPlugin

    from services.api.app import create_app
    from services.config import Settings

    app = create_app(Settings())
    schema: dict[str, Any] = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    return schema


def documents() -> dict[str, str]:
    def dumps(doc: dict[str, Any]) -> str:
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    return {"openapi.json": dumps(openapi()), "events.schema.json": dumps(event_schemas()),
            "asyncapi.json": dumps(asyncapi())}


def main() -> None:
    for name, text in documents().items():
        (HERE / name).write_text(text)
        print(f"wrote schemas/{name}")


if __name__ == "__main__":
    main()
