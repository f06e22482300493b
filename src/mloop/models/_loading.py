"""``load_model``: resolve, verify every digest, apply the trust policy, then load.

The order is the point: nothing from the package is parsed by a model library until every
file has been proven to be the one packaged (and, for a registered version, the package to
be the one registered, and signed when its policy says so).
"""

from __future__ import annotations

import os

from mloop.errors import TamperedPackage
from mloop.models._flavors import get_flavor
from mloop.models._loaded import LoadedModel
from mloop.models._package import package_digest, verify_package
from mloop.models._requirements import warn_about_environment
from mloop.models._resolve import forget_cached, locate


def load_model(uri: str | os.PathLike[str]) -> LoadedModel:
    """Load the model ``uri`` names: ``runs:/RUN_ID/NAME``, ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``, or a package folder.

    Raises :class:`~mloop.errors.TamperedPackage` when any file differs from the manifest
    (or the manifest from the registered one), :class:`~mloop.errors.UntrustedSignature`
    when the registered model's trust policy requires a signature the package lacks, and
    :class:`~mloop.errors.UnsafeModel` when a file names a type outside the allow-list.
    """
    located = locate(uri)
    try:
        manifest = verify_package(located.path)
    except TamperedPackage:
        if not located.cached:
            raise
        # The copy in the local cache may be what was damaged: fetch it once more, and
        # refuse if the store's own files do not match either.
        forget_cached(located)
        located = locate(uri)
        manifest = verify_package(located.path)
    if located.registered_digest is not None:
        found = package_digest(located.path)
        if found != located.registered_digest:
            raise TamperedPackage(
                f"{located.uri} was registered with package digest "
                f"{located.registered_digest}, but the package at its source now has "
                f"{found}: the manifest was replaced after registration. Do not load it",
                details={"file": "mloop-model.json", "problem": "changed"},
            )
    from mloop.models import _trust

    _trust.enforce(located.path, manifest.to_dict(), located.registered_model)
    predictor = get_flavor(manifest.flavor).load(located.path, manifest)
    warn_about_environment(located.uri, manifest.requirements, manifest.python_version)
    return LoadedModel(predictor, manifest, located.path, located.uri)
