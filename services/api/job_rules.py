"""Checks on a job definition that its types cannot express: the endpoint's address, the
cron expression and time zone, the payload schema. Each failure names its field."""

import zoneinfo
from datetime import UTC, datetime
from functools import cache

from cronsim import CronSim, CronSimError

from schemas.api import CreateJobRequest
from services.addresses import UrlRefused, check_endpoint_url
from services.api.errors import invalid
from services.api.payload_schema import SchemaRefused, check_schema_async
from services.config import Settings


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> None:
    # Looked up in the known names, never opened as a path.
    if name != "UTC" and name not in _zones():
        raise invalid("timezone", f"unknown time zone {name!r}; use an IANA name such as "
                                  "Europe/Paris")


def check_cron(expression: str, field: str = "cron") -> None:
    if len(expression.split()) != 5:
        raise invalid(field, "a cron expression has five fields: minute hour "
                             "day-of-month month day-of-week")
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        raise invalid(field, f"not a valid cron expression: {exc}") from None


def check_limits(request: CreateJobRequest) -> None:
    """The rate limit is a pair; the per-key limits name each key once."""
    if (request.rate_limit_max is None) != (request.rate_limit_window_secs is None):
        missing = "rate_limit_window_secs" if request.rate_limit_window_secs is None \
            else "rate_limit_max"
        raise invalid(missing, "rate_limit_max and rate_limit_window_secs are given "
                               "together or not at all")
    seen: set[str] = set()
    for index, key in enumerate(request.rate_limit_keys):
        if key.name in seen:
            raise invalid(f"rate_limit_keys/{index}/name", f"{key.name!r} is named twice")
        seen.add(key.name)


async def check_job(request: CreateJobRequest, settings: Settings) -> None:
    """Raise ApiError (422, naming the field) unless the definition can run as given."""
    allowed = settings.allowed_ip_networks()
    for field, url in (("endpoint_url", request.endpoint_url),
                       ("fallback_endpoint_url", request.fallback_endpoint_url),
                       ("webhook_url", request.webhook_url)):
        if url is not None:
            try:
                check_endpoint_url(url, allowed)
            except UrlRefused as exc:
                raise invalid(field, str(exc)) from None
    check_timezone(request.timezone)
    if request.cron is not None:
        check_cron(request.cron)
    if request.execution_window_cron is not None:
        check_cron(request.execution_window_cron, "execution_window_cron")
    check_limits(request)
    if request.payload_schema is not None:
        try:
            # In a worker process, within a time budget: checking a large schema is not
            # free (every pattern is compiled), and the event loop must stay free.
            await check_schema_async(request.payload_schema)
        except SchemaRefused as exc:
            raise invalid(exc.path or "payload_schema", exc.reason) from None
