"""Settings, read in one place.

Order of sources, strongest first: keyword arguments to :func:`get_settings`, ``MLOOP_*``
environment variables, ``mloop.toml`` in the current directory, defaults. Nothing is read
at import time: call :func:`get_settings` when a value is needed, so tests and long-lived
processes see changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Where every component lives and how it behaves."""

    model_config = SettingsConfigDict(
        env_prefix="MLOOP_", toml_file="mloop.toml", extra="ignore", frozen=True
    )

    home: Path = Field(default=Path(".mloop"), description="Folder of the embedded stores.")
    db_uri: str | None = Field(default=None, description="SQLAlchemy URI of the metadata store.")
    artifact_uri: str | None = Field(
        default=None, description="Root of the artifact store: a folder or s3://bucket/prefix."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible server (MinIO, moto, …)."
    )
    signing_key: str | None = Field(
        default=None,
        description="Private key (from `mloop keys generate`) that automation, such as the "
        "retraining pipeline, signs the model versions it registers with.",
    )
    kek_file: str | None = Field(
        default=None,
        description="Key-encryption key file (or NAME://… of a registered key provider); "
        "when set, new artifacts are stored encrypted.",
    )
    tracking_uri: str | None = Field(
        default=None, description="http(s)://… to log through a tracking server."
    )
    flush_interval: float = Field(
        default=1.0, gt=0, description="Seconds between background flushes of buffered metrics."
    )
    capture: bool = Field(
        default=True, description="Record git state, environment and resources on every run."
    )
    experiment_name: str | None = Field(default=None, description="Default experiment name.")
    user: str | None = Field(default=None, description="User recorded on new runs.")
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="API key (mloop_<id>_<secret>) sent as a Bearer token to mloop servers.",
    )
    server_auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Require API keys on the tracking and inference servers: 'auto' turns it "
        "on whenever the server listens on anything but loopback.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://… shared by inference-server replicas (rate-limit buckets).",
    )
    rate_limit_on_redis_error: Literal["local", "closed", "open"] = Field(
        default="local",
        description="What rate limits do while Redis cannot be reached: keep limiting in "
        "each process (local), refuse requests (closed) or let them through (open).",
    )
    prediction_log_uri: str | None = Field(
        default=None,
        description="Root of the prediction and feedback logs: a folder or s3://…; "
        "default: predictions/ inside home.",
    )
    deployment_poll_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between an inference server's checks for deployment changes.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_db_uri(self) -> str:
        """The metadata store URI: ``db_uri`` or SQLite inside ``home``."""
        if self.db_uri:
            return self.db_uri
        return f"sqlite:///{(self.home / 'mloop.db').absolute()}"

    @property
    def metadata_uri(self) -> str:
        """The metadata store everything on this side of the wire uses: the tracking URI
        when that is a database URI (so runs, models and datasets share one lineage graph),
        else ``resolved_db_uri``."""
        uri = self.tracking_uri
        if not uri or uri.startswith(("http://", "https://")):
            return self.resolved_db_uri
        return uri

    @property
    def resolved_artifact_uri(self) -> str:
        """The artifact store root: ``artifact_uri`` or a folder inside ``home``."""
        if self.artifact_uri:
            return self.artifact_uri
        return str((self.home / "artifacts").absolute())

    @property
    def resolved_prediction_log_uri(self) -> str:
        """The prediction-log root: ``prediction_log_uri`` or a folder inside ``home``."""
        if self.prediction_log_uri:
            return self.prediction_log_uri
        return str((self.home / "predictions").absolute())


def get_settings(**overrides: Any) -> Settings:
    """Read the settings now; keyword arguments win over every other source. A value that
    does not fit (``MLOOP_SERVER_AUTH=maybe``) is a :class:`ConfigError` naming the
    variable, the value and what it may be."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        from mloop.errors import ConfigError

        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            source = (
                field if field in overrides else f"MLOOP_{field.upper()} (or {field} in mloop.toml)"
            )
            problems.append(f"{source}={error.get('input')!r}: {error['msg']}")
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None
