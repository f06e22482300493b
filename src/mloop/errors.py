"""One exception tree for all of mloop.

Every message says what went wrong and the next thing to do about it, so a user never
needs a stack trace to act. The CLI prints ``str(error)`` on one line and exits 2; the
servers turn ``error.http_status`` and ``error.code`` into one JSON error shape.

::

    MloopError
    ├── ConfigError                 bad setting or unknown URI scheme
    │   └── EncryptionKeyError      encrypted content and a missing or wrong key
    ├── InvalidInput                the caller passed something malformed
    │   ├── FilterSyntaxError       search filter that does not parse (with column)
    │   ├── UnsafePath              artifact path escaping its root
    │   ├── UnsafeModel             a file would import or call something off the allow-list
    │   ├── SignatureMismatch       input or output does not fit a model's signature
    │   └── PayloadTooLarge         a request body over the configured limit
    ├── Unauthenticated             no credentials, or credentials that are not valid
    ├── PermissionDenied            valid credentials without the role the action needs
    ├── RateLimited                 too many requests; retry after ``retry_after`` seconds
    ├── NotFound                    experiment, run, artifact, … does not exist
    ├── Conflict                    already exists / immutable value changed
    │   └── PolicyViolation         a promotion or load a trust/approval policy refuses
    ├── IntegrityError              stored bytes do not match their digest
    │   ├── TamperedPackage         a model package file changed, went missing or appeared
    │   └── UntrustedSignature      a signature is missing, invalid or from an unknown key
    ├── StoreError                  the metadata store failed or needs migrating
    └── RemoteError                 the tracking server answered with an error
"""

from __future__ import annotations

from typing import Any


class MloopError(Exception):
    """Base of every error mloop raises on purpose."""

    code = "MLOOP_ERROR"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(MloopError):
    """A setting is wrong or names a backend that is not installed."""

    code = "CONFIG_ERROR"
    http_status = 400


class InvalidInput(MloopError):
    """The caller passed a value that cannot be used as given."""

    code = "INVALID_INPUT"
    http_status = 400


class FilterSyntaxError(InvalidInput):
    """A search filter does not parse; ``column`` points at the mistake (1-based)."""

    code = "INVALID_FILTER"

    def __init__(self, message: str, *, text: str, column: int) -> None:
        super().__init__(
            f"{message} (at column {column} of {text!r})",
            details={"column": column, "filter": text},
        )
        self.column = column
        self.text = text

    @property
    def pointer(self) -> str:
        """The filter with a caret under the mistake, for display on two lines."""
        return f"{self.text}\n{' ' * (self.column - 1)}^"


class UnsafePath(InvalidInput):
    """A user-supplied path would leave the root it must stay inside."""

    code = "UNSAFE_PATH"


class UnsafeModel(InvalidInput):
    """A model file would import or call something outside the allow-list, or cannot be
    parsed (scanning fails closed). ``details["findings"]`` lists what was found."""

    code = "UNSAFE_MODEL"


class SignatureMismatch(InvalidInput):
    """Input or output does not fit the model's signature; the message names the column."""

    code = "SIGNATURE_MISMATCH"


class Unauthenticated(MloopError):
    """No credentials were given, or they are not valid (unknown or revoked API key)."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(MloopError):
    """The caller is known but lacks the role the action needs on that resource."""

    code = "PERMISSION_DENIED"
    http_status = 403


class PayloadTooLarge(InvalidInput):
    """A request body is larger than the server accepts."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class RateLimited(MloopError):
    """A caller spent its request budget; ``retry_after`` says when a token is back."""

    code = "RATE_LIMITED"
    http_status = 429

    def __init__(
        self, message: str, *, retry_after: float, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class NotFound(MloopError):
    """The thing asked for does not exist."""

    code = "NOT_FOUND"
    http_status = 404


class Conflict(MloopError):
    """The write contradicts what is already stored (duplicate name, changed param)."""

    code = "CONFLICT"
    http_status = 409


class IntegrityError(MloopError):
    """Stored content does not match its recorded digest: it was changed or corrupted."""

    code = "INTEGRITY_ERROR"
    http_status = 500


class PolicyViolation(Conflict):
    """A trust or promotion policy refuses the action (missing approval, signature, scan)."""

    code = "POLICY_VIOLATION"


class TamperedPackage(IntegrityError):
    """A model package file was changed, removed or added after packaging."""

    code = "TAMPERED_PACKAGE"
    http_status = 409


class UntrustedSignature(IntegrityError):
    """A signature is missing, does not verify, or was made by a key nobody trusts."""

    code = "UNTRUSTED_SIGNATURE"
    http_status = 403


class EncryptionKeyError(ConfigError):
    """Encrypted content cannot be opened: the key-encryption key is missing or wrong."""

    code = "ENCRYPTION_KEY_ERROR"


class StoreError(MloopError):
    """The metadata store could not do what was asked (unreachable, locked, old schema)."""

    code = "STORE_ERROR"
    http_status = 503


class RemoteError(MloopError):
    """The tracking server answered with an error; ``code`` carries the server's code."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "REMOTE_ERROR",
        http_status: int = 502,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.code = code
        self.http_status = http_status


__all__ = [
    "ConfigError",
    "Conflict",
    "EncryptionKeyError",
    "FilterSyntaxError",
    "IntegrityError",
    "InvalidInput",
    "MloopError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PolicyViolation",
    "RateLimited",
    "RemoteError",
    "SignatureMismatch",
    "StoreError",
    "TamperedPackage",
    "Unauthenticated",
    "UnsafeModel",
    "UnsafePath",
    "UntrustedSignature",
]
