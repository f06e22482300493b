"""Checking and parsing the names the registry accepts: models, deployments, aliases, users,
version references, dataset references, roles and scopes.

Names end up in URIs (``models:/NAME@alias``), in scopes (``model:NAME``) and in audit
targets, so they may not contain ``/``, ``@`` or ``:``; aliases may not look like version
numbers, so ``models:/NAME/3`` and ``models:/NAME@3`` can never be confused.
"""

from __future__ import annotations

import re
from typing import Any

from mloop.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
# a deployment's prediction log lives in a folder "deployment=<name>": 255 bytes at most
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,243}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,249}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
RESERVED_ALIASES = frozenset({"latest"})
ROLES = ("viewer", "editor", "approver", "deployer", "admin")
USER_KINDS = ("user", "service")
SCOPE_KINDS = ("experiment", "model", "deployment")
GLOBAL_SCOPE = "global"


def model_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"model name {name!r} is not valid; use 1-256 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def deployment_name(name: Any) -> str:
    """Deployments follow the model-name rule (``mloop serve iris`` and the implicit
    deployment of ``models:/iris/1`` share one name space), but up to 244 characters: the
    prediction log keeps each deployment in a folder named ``deployment=<name>``."""
    if not isinstance(name, str) or not _DEPLOYMENT.match(name):
        raise InvalidInput(
            f"deployment name {name!r} is not valid; use 1-244 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit"
        )
    return name


def alias_name(alias: Any) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInput(
            f"alias {alias!r} is not valid; use 1-64 letters, digits, '_' or '-', starting "
            "with a letter or '_' (e.g. champion, challenger)"
        )
    if alias.lower() in RESERVED_ALIASES:
        raise InvalidInput(f"alias {alias!r} is reserved: it always means the newest version")
    return alias


def user_name(name: Any) -> str:
    if not isinstance(name, str) or not _USER.match(name):
        raise InvalidInput(
            f"user name {name!r} is not valid; use 1-250 letters, digits, '.', '_', '@', "
            "'+' or '-', starting with a letter or digit"
        )
    return name


def user_kind(kind: Any) -> str:
    if kind not in USER_KINDS:
        raise InvalidInput(f"user kind {kind!r} is not valid; use 'user' or 'service'")
    return str(kind)


def role(value: Any) -> str:
    if value not in ROLES:
        raise InvalidInput(f"role {value!r} does not exist; use one of: {', '.join(ROLES)}")
    return str(value)


def scope(value: Any) -> str:
    """``global``, ``experiment:<id or name>``, ``model:<name>`` or ``deployment:<name>``,
    checked and canonical."""
    if value in (None, "", GLOBAL_SCOPE):
        return GLOBAL_SCOPE
    if isinstance(value, str):
        kind, sep, ident = value.partition(":")
        if sep and kind in SCOPE_KINDS and ident:
            if kind == "model":
                model_name(ident)
            elif kind == "deployment":
                deployment_name(ident)
            elif len(ident) > 256 or any(c.isspace() for c in ident):
                raise InvalidInput(f"experiment {ident!r} in scope {value!r} is not valid")
            return f"{kind}:{ident}"
    raise InvalidInput(
        f"scope {value!r} is not valid; use 'global', 'experiment:<id or name>', "
        "'model:<name>' or 'deployment:<name>'"
    )


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '¹' or '٣', which ``int`` refuses or
    reads as a number nobody typed."""
    return text.isascii() and text.isdigit()


def version_number(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"model version {value!r} is not valid; use 1, 2, …")
    if isinstance(value, str) and is_number(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise InvalidInput(f"model version {value!r} is not valid; use 1, 2, …")
    return value


def version_ref(ref: Any) -> tuple[str, int | str | None]:
    """What ``resolve`` was asked for: ``("number", 3)``, ``("alias", "champion")`` or
    ``("latest", None)``. Accepts ``3``, ``"3"``, ``"@champion"``, ``"champion"`` and
    ``"latest"``."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return "number", version_number(ref)
    if isinstance(ref, str):
        text = ref.strip()
        if is_number(text):
            return "number", version_number(text)
        if text.lower() == "latest":
            return "latest", None
        if text.startswith("@"):
            return "alias", alias_name(text[1:])
        if _ALIAS.match(text):
            return "alias", text
    raise InvalidInput(
        f"version reference {ref!r} is not valid; use a version number (3), an alias "
        "(@champion) or 'latest'"
    )


def package_digest(value: Any) -> str:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise InvalidInput(
            f"package digest {value!r} is not valid; pass the SHA-256 (64 lowercase hex "
            "digits) of the package's manifest file"
        )
    return value


def source_uri(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 4096:
        raise InvalidInput(
            f"model source {value!r} is not valid; pass the package's URI "
            "(runs:/RUN_ID/NAME) or path"
        )
    if value.startswith("models:/"):
        raise InvalidInput(
            f"model source {value!r} points into the registry itself; register the "
            "package's own URI (runs:/RUN_ID/NAME or a path)"
        )
    return value


def dataset_ref(value: Any) -> tuple[str, int | None]:
    """A training dataset version: ``"name@3"``, ``"name@latest"`` or an object with
    ``.ref`` (a ``DatasetVersion``)."""
    ref = getattr(value, "ref", value)
    if isinstance(ref, str):
        name, sep, number = ref.rpartition("@")
        if sep and _NAME.match(name):
            if number == "latest":
                return name, None
            if is_number(number) and int(number) >= 1:
                return name, int(number)
    raise InvalidInput(
        f"dataset version {ref!r} is not valid; use NAME@VERSION (as `mloop data list` "
        "shows) or a DatasetVersion"
    )


def tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"tags must be a mapping of names to strings, not {value!r}")
    return {tag_key(k): tag_value(v) for k, v in value.items()}


def tag_key(key: Any) -> str:
    if not isinstance(key, str) or not _TAG_KEY.match(key):
        raise InvalidInput(
            f"tag name {key!r} is not valid; use 1-250 letters, digits, spaces, '_', '-', "
            "'.' or '/'"
        )
    return key


def tag_value(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 5000:
        raise InvalidInput(f"tag value {value!r} is not valid; use a string of at most 5000")
    return value


def description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 20_000:
        raise InvalidInput("a description must be a string of at most 20,000 characters")
    return value
