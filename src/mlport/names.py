"""Resource-name rules: the portable alphabet every spec checks, and each provider's own rules.

A name is checked twice. At construction a spec rejects what no provider accepts
(:data:`PORTABLE`); at ``submit``/``deploy``/``create`` the service checks the rules of the provider
that will run it, and the error names the rule and the provider. ``mlport config check --portable``
uses :func:`refusals` to warn about names that some other provider would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from mlport.errors import InvalidSpecError

__all__ = [
    "PORTABLE",
    "PROVIDER_RULES",
    "NameRule",
    "ResourceKind",
    "check",
    "check_portable",
    "refusals",
]

ResourceKind = Literal["job", "model", "endpoint", "notebook", "monitor"]
KINDS: tuple[ResourceKind, ...] = ("job", "model", "endpoint", "notebook", "monitor")


@dataclass(frozen=True)
class NameRule:
    """One naming rule: an id to cite in errors, a full-match pattern, and words for humans."""

    rule_id: str
    pattern: str
    description: str

    def accepts(self, name: str) -> bool:
        """True if ``name`` satisfies the rule."""
        return re.fullmatch(self.pattern, name) is not None


PORTABLE = NameRule(
    "portable-name",
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}",
    "1-255 characters: letters, digits, '.', '_' and '-', starting with a letter or digit",
)

_SAGEMAKER = NameRule(
    "sagemaker-name",
    r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}",
    "1-63 letters, digits and hyphens, starting and ending with a letter or digit",
)
_VERTEX_DISPLAY = NameRule(
    "vertex-display-name", r".{1,128}", "a display name of at most 128 characters"
)
_VERTEX_INSTANCE = NameRule(
    "vertex-instance-id",
    r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
    "1-63 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen",
)
_AZURE_JOB = NameRule(
    "azureml-job-name",
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}",
    "1-255 letters, digits, '_' and '-', starting with a letter or digit",
)
_AZURE_ASSET = NameRule(
    "azureml-asset-name",
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}",
    "1-255 letters, digits, '.', '_' and '-', starting with a letter or digit",
)
_AZURE_ENDPOINT = NameRule(
    "azureml-endpoint-name",
    r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]",
    "3-32 letters, digits and hyphens, starting with a letter and ending with a letter or digit",
)
_AZURE_COMPUTE = NameRule(
    "azureml-compute-name",
    r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]",
    "3-24 letters, digits and hyphens, starting with a letter and ending with a letter or digit",
)
_ONPREM = NameRule(
    "onprem-name",
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
    "1-128 letters, digits, '.', '_' and '-', starting with a letter or digit",
)


def _same(rule: NameRule) -> Mapping[ResourceKind, NameRule]:
    return MappingProxyType(dict.fromkeys(KINDS, rule))


PROVIDER_RULES: Mapping[str, Mapping[ResourceKind, NameRule]] = MappingProxyType(
    {
        "sagemaker": _same(_SAGEMAKER),
        "vertex": MappingProxyType(
            {
                "job": _VERTEX_DISPLAY,
                "model": _VERTEX_DISPLAY,
                "endpoint": _VERTEX_DISPLAY,
                "notebook": _VERTEX_INSTANCE,
                "monitor": _VERTEX_DISPLAY,
            }
        ),
        "azureml": MappingProxyType(
            {
                "job": _AZURE_JOB,
                "model": _AZURE_ASSET,
                "endpoint": _AZURE_ENDPOINT,
                "notebook": _AZURE_COMPUTE,
                "monitor": _AZURE_JOB,
            }
        ),
        "onprem": _same(_ONPREM),
    }
)
"""The rules of the first-party providers. Third-party providers declare theirs on their
:class:`~mlport.providers.ProviderSpec` (``name_rules``)."""


def check_portable(name: str, kind: ResourceKind = "job") -> str:
    """Return ``name`` if some provider could accept it; raise otherwise.

    Raises:
        InvalidSpecError: naming the rule the name breaks.
    """
    if not isinstance(name, str) or not PORTABLE.accepts(name):
        raise InvalidSpecError(
            f"{kind} name {name!r} is not accepted by any provider: rule {PORTABLE.rule_id!r} "
            f"requires {PORTABLE.description}"
        )
    return name


def check(
    name: str,
    kind: ResourceKind,
    provider: str,
    rules: Mapping[ResourceKind, NameRule] | None = None,
) -> None:
    """Check ``name`` against the rules of ``provider`` for a resource of ``kind``.

    Args:
        name: The resource name.
        kind: What the name is for.
        provider: The provider that will create the resource.
        rules: The provider's own rules; defaults to :data:`PROVIDER_RULES` for first-party ones.

    Raises:
        InvalidSpecError: naming the provider, the rule and what it requires.
    """
    check_portable(name, kind)
    table = rules if rules is not None else PROVIDER_RULES.get(provider, {})
    rule = table.get(kind)
    if rule is not None and not rule.accepts(name):
        raise InvalidSpecError(
            f"{kind} name {name!r} is not accepted by provider {provider!r}: rule "
            f"{rule.rule_id!r} requires {rule.description}",
            provider=provider,
            resource=name,
        )


def refusals(name: str, kind: ResourceKind) -> dict[str, NameRule]:
    """The first-party providers that would refuse ``name`` for ``kind``, with the rule each applies."""
    return {
        provider: table[kind]
        for provider, table in PROVIDER_RULES.items()
        if kind in table and not table[kind].accepts(name)
    }
