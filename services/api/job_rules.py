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


def check_cron(expression: str) -> None:
    if len(expression.split()) != 5:
        raise invalid("cron", "a cron expression has five fields: minute hour "
                              "day-of-month month day-of-week")
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        raise invalid("cron", f"not a valid cron expression: {exc}") from None


async def check_job(request: CreateJobRequest, settings: Settings) -> None:
    """Raise ApiError (422, naming the field) unless the definition can run as given."""
    allowed = settings.allowed_ip_networks()
    for field, url in (("endpoint_url", request.endpoint_url),
                       ("fallback_endpoint_url", request.fallback_endpoint_url)):
        if url is not None:
            try:
                check_endpoint_url(url, allowed)
            except UrlRefused as exc:
                raise invalid(field, str(exc)) from None
    check_timezone(request.timezone)
    if request.cron is not None:
        check_cron(request.cron)
    if request.payload_schema is not None:
        try:
            # In a worker process, within a time budget: checking a large schema is not
            # free (every pattern is compiled), and the event loop must stay free.
            await check_schema_async(request.payload_schema)
        except SchemaRefused as exc:
            raise invalid(exc.path or "payload_schema", exc.reason) from None
