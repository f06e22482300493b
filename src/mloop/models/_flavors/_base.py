"""The one interface every flavor implements, built-in or third-party.

A flavor knows one kind of model: whether it can save an object, how to write it into a
package folder in a format that loads without running code from the file, and how to read
it back as a :class:`Predictor`. It imports its library inside these methods, never at
module level, so ``import mloop`` stays light and a missing library is only an error for
the flavor that needs it.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mloop.models._manifest import Manifest


@runtime_checkable
class Predictor(Protocol):
    """What a flavor's ``load`` returns: ``predict``, and ``predict_proba`` when the model
    gives class probabilities (then as a method of the same object)."""

    def predict(self, model_input: Any) -> Any: ...


class Flavor(abc.ABC):
    """Subclass, set ``name`` (and ``packages``), implement the three methods, and pass an
    instance to :func:`mloop.models.register_flavor`."""

    name: ClassVar[str]
    """Recorded in the manifest; lowercase letters, digits and ``_``."""
    packages: ClassVar[tuple[str, ...]] = ()
    """Import names whose installed versions the manifest pins (``"sklearn"``, …)."""

    @abc.abstractmethod
    def can_save(self, model: Any) -> bool:
        """Whether ``model`` is this flavor's kind. Check the type without importing the
        library when you can (``type(model).__module__``), so detection stays cheap."""

    @abc.abstractmethod
    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write the model's files into ``directory`` (which exists and is empty) and return
        the JSON-able flavor data the manifest keeps for ``load``. The names
        ``mloop-model.json`` and ``mloop-model.sig`` are reserved."""

    @abc.abstractmethod
    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        """Read the model back from a package whose digests have already been verified."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} flavor {self.name!r}>"


def module_of(model: Any) -> tuple[str, ...]:
    """The top-level modules of the classes ``model`` is built from (its type's MRO)."""
    return tuple(cls.__module__.partition(".")[0] for cls in type(model).__mro__)


def package_file(directory: Path, manifest: Manifest, key: str, default: str) -> Path:
    """The file flavor data names under ``key``, refused unless the manifest lists it: only
    files whose digests were verified are ever read."""
    from mloop.errors import TamperedPackage

    name = manifest.flavor_data.get(key, default)
    if not isinstance(name, str) or name not in manifest.files:
        raise TamperedPackage(
            f"the manifest's flavor data names {name!r} as {key}, which is not one of the "
            "package's listed files",
            details={"file": str(name)},
        )
    return directory / name
