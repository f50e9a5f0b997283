"""ARM conventions shared by every resource family: ids, ``systemData``, paging, name rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from mlport_azureml.emulator._http import Request, Response, bad_request

__all__ = [
    "NAME_RULES",
    "check_name",
    "now_iso",
    "page",
    "system_data",
]

PROVIDER = "Microsoft.MachineLearningServices"
_PAGE_SIZE = 100

# Name rules, each from the reference cited in the README's validation table.
NAME_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    # Swagger path parameter `name` of codes, environments, models and data containers.
    "asset": (
        re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$"),
        "must start with a letter or digit and contain only letters, digits, '-' or '_' "
        "(at most 255 characters)",
    ),
    # Endpoint and deployment names (online and batch): 3-32 characters, a letter first,
    # letters, digits and '-', a letter or digit last.
    "endpoint": (
        re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$"),
        "must be 3-32 characters, start with a letter, end with a letter or digit, and contain "
        "only letters, digits and '-'",
    ),
    # Swagger path parameter `id` of jobs.
    "job": (
        re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$"),
        "must start with a letter or digit and contain only letters, digits, '-' or '_' "
        "(at most 255 characters)",
    ),
    # Compute names: 3-24 characters, a letter first, letters, digits and '-', and a '-' must be
    # followed by a letter later in the name.
    "compute": (
        re.compile(r"^(?=.{3,24}$)[a-zA-Z][a-zA-Z0-9]*(?:-[a-zA-Z0-9-]*[a-zA-Z][a-zA-Z0-9]*)?$"),
        "must be 3-24 characters, start with a letter, contain only letters, digits and '-', "
        "and have a letter somewhere after its last '-'",
    ),
    # Swagger path parameter `name` of schedules.
    "schedule": (
        re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$"),
        "must start with a letter or digit and contain only letters, digits, '-' or '_'",
    ),
}


def check_name(kind: str, name: str, target: str = "name") -> None:
    """Refuse a resource name the REST reference does not allow.

    Raises:
        ApiError: 400 ``UserError`` naming the field.
    """
    pattern, rule = NAME_RULES[kind]
    if not pattern.fullmatch(name):
        raise bad_request(f"The {kind} name '{name}' is invalid: it {rule}.", target)


def now_iso() -> str:
    """The current time as ARM writes it."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def system_data(
    previous: dict[str, Any] | None = None, user: str = "emulator-user"
) -> dict[str, Any]:
    """``systemData`` for a created (or, given the previous one, modified) resource."""
    stamp = now_iso()
    if previous:
        return {
            **previous,
            "lastModifiedAt": stamp,
            "lastModifiedBy": user,
            "lastModifiedByType": "User",
        }
    return {
        "createdAt": stamp,
        "createdBy": user,
        "createdByType": "User",
        "lastModifiedAt": stamp,
        "lastModifiedBy": user,
        "lastModifiedByType": "User",
    }


def page(request: Request, items: list[dict[str, Any]]) -> Response:
    """A list answer in ARM's paging shape, ``$skipToken`` carrying the offset."""
    try:
        start = int(request.query.get("$skipToken") or 0)
    except ValueError:
        raise bad_request("$skipToken is not one this service issued.", "$skipToken") from None
    try:
        size = int(request.query.get("$top") or _PAGE_SIZE)
    except ValueError:
        raise bad_request("$top must be a number.", "$top") from None
    size = max(1, min(size, _PAGE_SIZE))
    chunk = items[start : start + size]
    body: dict[str, Any] = {"value": chunk}
    if start + size < len(items):
        query = {k: v for k, v in request.query.items() if k != "$skipToken"}
        query["$skipToken"] = str(start + size)
        from urllib.parse import urlencode

        body["nextLink"] = f"{request.base_url}{request.path}?{urlencode(query)}"
    return Response(200, body)
