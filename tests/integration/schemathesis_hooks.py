"""Schemathesis hooks for test_schemathesis.py (loaded through schemathesis.toml).

- Every job sent gets a slug of its own, so that creating it can succeed and the stateful
  phase can follow the links from it (trigger, read, cancel) instead of meeting 409 on
  the hundredth "nightly-report" of the coverage phase.
- positive_data_acceptance lets the job and trigger routes refuse schema-valid bodies with 422 (see
  schemathesis.toml). The check below narrows that back: such a 422 must name only a rule
  no JSON Schema can state.
"""

import itertools
import re
import secrets
from typing import Any

import schemathesis

from schemas.limits import MAX_JSON_DEPTH, MAX_JSON_INT, MIN_JSON_INT

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")
_RUN = secrets.token_hex(3)  # distinct from any earlier run against the same stack
_COUNTER = itertools.count()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    # Every phase (the coverage phase varies one example, whose slug would repeat). Only a
    # slug that is valid already is replaced, by another valid one: a body that breaks the
    # contract breaks it as before.
    body = case.body
    if (case.operation.label == "POST /v1/jobs" and isinstance(body, dict)
            and isinstance(body.get("slug"), str) and _SLUG.match(body["slug"])):
        base = body["slug"].split(f"-{_RUN}")[0]  # a body sent again keeps one suffix
        body["slug"] = f"{base[:48]}-{_RUN}{next(_COUNTER):x}"


# Why a job definition may be refused beyond its schema: where its endpoints may be (the
# operator's allowed networks), whether its time zone exists (the IANA database of the
# system), whether its cron expressions name real times, whether its webhook secret holds a
# key once read as base64 (as Standard Webhooks reads it), whether its payload_schema is
# itself a valid schema, whether its rate limit comes as a pair and its per-key limits
# name each key once (no schema the generator honours can say either).
_JOB_RULES = ("endpoint_url", "fallback_endpoint_url", "webhook_url", "webhook_secret",
              "timezone", "cron",
              "execution_window_cron", "payload_schema", "rate_limit_max",
              "rate_limit_window_secs", "rate_limit_keys")
# A list's cursor is opaque: only one the list handed out is taken, with the sort and
# order it was handed out with.
_CURSOR_RULES = ("not a cursor this list handed out", "the cursor is of another sort")
# An edit: the job's slug is its identity (it may not change), which only the stored job
# can tell.
_SLUG_RULE = "a job's slug cannot change"
# A dependency: it must name a job of the project, not the job itself, and close no
# cycle (the stored jobs and graph decide).
_DEPENDENCY_RULES = ("a job cannot depend on itself", "this would close a cycle",
                     "no job of this project has this id or slug")
# Metrics: how a bucket fits its window.
_BUCKET_RULES = ("longer than the window", "the window holds",
                 "buckets that are not whole hours")
# A trigger: the payload against the job's own payload_schema.
_PAYLOAD_RULE = "does not match the job's payload_schema"
_INT_GOT_FLOAT = re.compile(r"Expected `int( \| null)?`, got `float`")


def _value_at(body: Any, field: str) -> Any:
    for step in field.split("/"):
        if isinstance(body, dict):
            body = body.get(step)
        elif isinstance(body, list) and step.isdigit() and int(step) < len(body):
            body = body[int(step)]
        else:
            return None
    return body


# The fields that hold any JSON value (a bulk trigger's items are checked one by one, and a
# bad one is answered in its place; only the whole body's JSON limits refuse the request).
_JSON_VALUES = ("payload", "payload_schema", "items")


def _holds_int_beyond_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_int_beyond_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_int_beyond_64_bits(v) for v in value)
    return (isinstance(value, int) and not isinstance(value, bool)
            and not MIN_JSON_INT <= value <= MAX_JSON_INT)


def _beyond_the_schema(label: str, body: Any, detail: dict[str, Any]) -> bool:
    field, reason = str(detail.get("field", "")), str(detail.get("reason", ""))
    # JSON Schema's "integer" is a value, so 30.0 is one; this API takes an integer only
    # written as one (README, Limits: no float for an integer), which no schema can say.
    if _INT_GOT_FLOAT.fullmatch(reason):
        value = _value_at(body, field)
        return isinstance(value, float) and value.is_integer()
    # A JSON value (a payload, a payload_schema, a bulk item) is any JSON, with integers
    # within 64 bits and at most 32 levels deep, as its description says. No schema can
    # state that range: to JSON Schema 1.5e300 is an integer too, and the API takes it, as
    # a float. Nor the depth of any JSON value, short of writing a schema 32 levels deep.
    # (The field is a path; keys inside a JSON value may hold "/", so only its first
    # step, a field of the request, is looked up.)
    if reason.startswith("integer out of the 64-bit range"):
        top = field.split("/")[0]
        return (top in _JSON_VALUES and isinstance(body, dict)
                and _holds_int_beyond_64_bits(body.get(top)))
    if reason == f"nested deeper than {MAX_JSON_DEPTH} levels":
        return True
    if field == "cursor":
        return reason.startswith(_CURSOR_RULES)
    if label == "GET /v1/runs":
        # A page is by cursor or by offset (a rule between two fields); and a time bound
        # is RFC 3339, which "format: date-time" names but JSON Schema does not enforce.
        return (field == "offset" and reason.startswith("page by cursor or by offset")) or (
            field.endswith(("_after", "_before")) and reason.startswith("not an RFC 3339"))
    if label == "GET /v1/jobs":
        # Cursor or offset, as above; and a search's words are runs of letters and digits,
        # a rule the text's schema (any string up to 200) does not state.
        return (field == "offset" and reason.startswith("page by cursor or by offset")) or (
            field == "q" and reason.startswith(("a search needs", "at most")))
    if label == "GET /v1/metrics":
        # A bucket must fit its window (projections.metrics.plan_of): a rule between two
        # parameters.
        return field == "bucket" and reason.startswith(_BUCKET_RULES)
    if label == "POST /v1/runs/cancel-waiting":
        # A version is of a job: job_version without job_id (a rule between two fields).
        return field == "job_version" and reason == "needs job_id"
    if label == "POST /v1/jobs/{job_id}/dependencies":
        return field == "depends_on" and reason.startswith(_DEPENDENCY_RULES)
    if label in ("POST /v1/jobs", "PATCH /v1/jobs/{job_id}"):
        return field.split("/")[0] in _JOB_RULES or (
            field == "slug" and reason.startswith(_SLUG_RULE))
    if label == "POST /v1/jobs/batch":
        # Each item is answered in its place; only the body as a whole is refused here.
        return False
    if label == "POST /v1/jobs/{id_or_slug}/trigger":
        return _PAYLOAD_RULE in reason
    return False


@schemathesis.check
def refusal_of_valid_data_names_a_rule_beyond_the_schema(
        ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if (response.status_code != 422 or meta is None
            or not meta.generation.mode.is_positive):
        return None
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        details = []
    if not details or not all(_beyond_the_schema(case.operation.label, case.body, detail)
                              for detail in details):
        raise AssertionError(
            f"schema-valid data refused with 422 for a reason the schema could state: "
            f"{response.text[:500]}")
    return None
