"""``Allow`` on OPTIONS answers that names every method of the path.

Litestar makes a path's OPTIONS handler when the path's first handler is registered and
keeps it when later handlers join the path, so its ``Allow`` named only the first method
(GET /v1/jobs/{id} said nothing of PATCH and DELETE). This hook writes ``Allow`` from
the app's route map, which holds every method, as the OPTIONS answer goes out.
"""

import re

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

_TYPE = re.compile(r":[a-z]+}")


async def allow_every_method(message: Message, scope: Scope) -> None:
    if (message["type"] != "http.response.start" or scope.get("method") != "OPTIONS"
            or message["status"] != 204):
        return
    template = scope.get("path_template", "")
    # The map's paths carry their parameters' types ({job_id:str}); the template not.
    methods = next((methods for path, methods in
                    scope["app"].route_handler_method_map.items()
                    if _TYPE.sub("}", path) == template), None)
    if methods:
        MutableScopeHeaders.from_message(message)["Allow"] = ", ".join(sorted(methods))
