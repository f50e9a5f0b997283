"""The model versions an endpoint serves, and how a request picks one.

A :class:`VariantSet` is immutable: a reload builds a new one (reusing every model whose source
did not change, so a weight-only change loads nothing) and the server swaps it in with one
assignment, while requests already holding the old set finish on it.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlport.errors import ConfigError, NotFoundError
from mlport.serving.config import VariantConfig
from mlport.serving.model import ServedModel

__all__ = ["Variant", "VariantSet", "load_variants"]

_log = logging.getLogger("mlport.serving")
_DEFAULT_LOADER = "mlport.serving.loaders:load"


@dataclass(eq=False)
class Variant:
    """One loaded model version.

    Attributes:
        version: Its version string.
        model: The loaded model.
        config: What it was loaded from, and its weight.
        signature: The package manifest's input signature, when it has one (for metadata).
        thread_seconds: Moving average of the CPU time its predict calls took in the predict
            thread, once measured.
        inline_seconds: Moving average of the time its predict calls blocked the event loop
            when run on it, once measured.
    """

    version: str
    model: ServedModel
    config: VariantConfig
    signature: dict[str, Any] | None = None
    thread_seconds: float | None = None
    inline_seconds: float | None = None
    header: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.header = self.version.encode()

    def describe(self) -> dict[str, Any]:
        """What the status file says about this variant."""
        return {
            "path": self.config.path,
            "manifest_sha256": self.config.manifest_sha256,
            "weight": self.config.weight,
            "framework": self.model.framework,
            "loader": self.model.loader,
            "n_features": self.model.n_features,
            "feature_names": self.model.feature_names,
            "batching": self.model.batching,
        }


class VariantSet:
    """The variants served at one time, with the weighted choice between them.

    Args:
        variants: Version -> variant.
        generation: How many reloads have been applied to the server before this set.
    """

    def __init__(self, variants: Mapping[str, Variant], generation: int = 1) -> None:
        self.variants = dict(variants)
        self.generation = generation
        self.versions = tuple(sorted(self.variants))
        weighted = [
            (v, self.variants[v]) for v in self.versions if self.variants[v].config.weight > 0
        ]
        self._choices = [variant for _, variant in weighted]
        self._bounds = list(itertools.accumulate(variant.config.weight for _, variant in weighted))
        self._total = self._bounds[-1] if self._bounds else 0.0

    def choose(self, random_value: Callable[[], float] = random.random) -> Variant:
        """Pick a variant at random in proportion to the weights.

        Raises:
            NotFoundError: No variant has a weight above 0.
        """
        if len(self._choices) == 1:
            return self._choices[0]
        if not self._choices:
            raise NotFoundError("no variant takes traffic (every weight is 0); pin one")
        index = bisect.bisect_right(self._bounds, random_value() * self._total)
        return self._choices[min(index, len(self._choices) - 1)]

    def get(self, version: str) -> Variant:
        """The variant of ``version``.

        Raises:
            NotFoundError: No such version; the message lists the versions served.
        """
        variant = self.variants.get(version)
        if variant is None:
            raise NotFoundError(
                f"no variant {version!r}; this endpoint serves versions {', '.join(self.versions)}"
            )
        return variant

    def describe(self) -> dict[str, Any]:
        """Version -> what the status file says about it."""
        return {version: self.variants[version].describe() for version in self.versions}

    def weights(self) -> dict[str, float]:
        """Version -> weight."""
        return {version: variant.config.weight for version, variant in self.variants.items()}


Loader = Callable[..., ServedModel]


def _loader(spec: str | None) -> Loader:
    module_name, _, attribute = (spec or _DEFAULT_LOADER).partition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import the model loader {spec or _DEFAULT_LOADER!r}: {exc}"
        ) from exc
    if not callable(function):
        raise ConfigError(f"the model loader {spec!r} is not callable")
    return function  # type: ignore[no-any-return]


def _signature(path: str) -> dict[str, Any] | None:
    from mlport.package import MANIFEST_NAME

    try:
        manifest = json.loads((Path(path) / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return None
    signature = manifest.get("signature") if isinstance(manifest, dict) else None
    return signature if isinstance(signature, dict) else None


def load_variants(
    configs: Mapping[str, VariantConfig],
    *,
    previous: VariantSet | None = None,
    generation: int = 1,
) -> VariantSet:
    """Load the models of ``configs``, reusing those of ``previous`` whose source is unchanged.

    Blocks while models load (seconds for a large model).

    Args:
        configs: Version -> what to serve.
        previous: The set served now, if any.
        generation: The new set's generation.

    Returns:
        The new set. Nothing is swapped in: the caller does that.

    Raises:
        Exception: Whatever the loader raises for the first model that fails to load (an
            :class:`~mlport.errors.IntegrityError` for a tampered package, ...), with the
            version named in a note.
    """
    loaded: dict[str, Variant] = {}
    for version, config in configs.items():
        old = previous.variants.get(version) if previous is not None else None
        if old is not None and old.config.source() == config.source():
            loaded[version] = Variant(
                version, old.model, config, old.signature, old.thread_seconds, old.inline_seconds
            )
            continue
        load = _loader(config.loader)
        try:
            model = load(config.path, manifest_sha256=config.manifest_sha256, trust=config.trust)
        except Exception as exc:
            exc.add_note(f"while loading variant {version!r} from {config.path}")
            raise
        if not isinstance(model, ServedModel):
            raise ConfigError(
                f"the loader of variant {version!r} returned {type(model).__name__}, "
                "not a ServedModel"
            )
        loaded[version] = Variant(version, model, config, _signature(config.path))
        _log.info("loaded variant %s from %s (%s)", version, config.path, model.loader or "?")
    return VariantSet(loaded, generation)
