"""The metadata store: experiments, runs, lineage and, later, datasets, models and deployments.

Open it with :func:`open_store`; it migrates itself to the newest schema on open.
"""

from mloop.store import schema
from mloop.store._engine import MetadataStore, current_revision, head_revision, open_store, upgrade

__all__ = ["MetadataStore", "current_revision", "head_revision", "open_store", "schema", "upgrade"]
