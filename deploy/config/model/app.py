"""deploy.yaml's `app` section: what to run, what it needs, what it keeps across releases."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from deploy.config import folders
from deploy.config.flask_version import declared_flask, flask_has_app_option
from deploy.config.model.base import (
    _WSGI,
    AppName,
    EnvName,
    Model,
    RelPath,
    SafeText,
    UrlPath,
    Version,
    _matches,
    _unique,
    invalid,
)


class Static(Model):
    """Static files that Nginx serves directly, with long caching."""

    url: UrlPath = Field(
        "/static",
        description="The URL prefix Nginx serves the static files under (not `/`, not under `/.well-known`).",
    )
    dir: RelPath = Field(
        "static",
        description="The folder of static files, relative to the project: public files only (not the "
        "root, the code, `instance/` or a shared path; no `.py`, `.db`, `.env`).",
    )
    max_age: Annotated[int, Field(ge=0, le=63072000)] = Field(
        31536000,
        description="Cache-Control max-age of the static files, in seconds (default one year).",
    )

    @field_validator("url")
    @classmethod
    def _a_prefix_of_its_own(cls, url: str) -> str:
        if url.strip("/") == "":
            raise ValueError("static.url must be a prefix such as /static, not '/': it would hide the app")
        if url.rstrip("/") == "/.well-known" or url.startswith("/.well-known/"):
            raise ValueError("static.url must not be under /.well-known (certificates are validated there)")
        return url


class App(Model):
    """The application: what to run, what it needs, and what it keeps across releases."""

    name: AppName = Field(
        description="Lower-case letters, digits and hyphens; names the systemd unit, `/etc/<name>` and "
        "the app's folders (never a system service's name).",
    )
    wsgi: Annotated[
        str,
        AfterValidator(_matches(_WSGI, "'module:app' or a factory call such as 'flaskr:create_app()'")),
    ] = Field(description="What Gunicorn runs: `module:app` or a factory call such as `module:create_app()`.")
    requirements: RelPath = Field(
        "requirements.txt",
        description="The pinned requirements file (or `pyproject.toml`), relative to the project.",
    )
    python: Version | None = Field(
        None,
        description="The Python the hosts run, such as `3.11`; default: whatever `python3` they have.",
    )
    static: Static | None = Field(
        None,
        description="Static files Nginx serves straight from the release, not through Python.",
    )
    health: UrlPath = Field(
        "/health",
        description="The URL that must answer 200 before a release takes traffic.",
    )
    env: dict[EnvName, SafeText] = Field(
        default_factory=dict,
        description="Plain settings, written into the systemd unit; never secrets.",
    )
    secrets: list[EnvName] = Field(
        default_factory=list,
        description="Names of secret settings only; their values come from the environment or a local "
        "`.env` at push time, into an env file of mode 0600.",
    )
    shared: list[RelPath] = Field(
        default_factory=list,
        description="Folders kept across releases (linked into every release): none inside another, none "
        "of them code or deploy's own.",
    )
    shared_files: list[RelPath] = Field(
        default_factory=list,
        description="Files kept across releases (a generated key, an SQLite file at the project root): "
        "created empty (mode 0600, owned by the app user) on first setup and linked into every release; "
        "never a file committed in the project.",
    )
    release: list[SafeText] = Field(
        default_factory=list,
        description="Commands run once per push on one host, before any host switches (migrations).",
    )
    port: Annotated[int, Field(ge=1024, le=65535)] = Field(
        8000,
        description="The port Gunicorn listens on inside a container.",
    )

    @field_validator("env")
    @classmethod
    def _no_debug_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key in ("FLASK_DEBUG", "DEBUG"):
            if key in env and env[key].strip().lower() not in ("", "0", "false", "no", "off"):
                raise ValueError(f"{key}={env[key]!r} turns on the debugger in production; remove it")
        if env.get("FLASK_ENV", "").strip().lower() == "development":
            raise ValueError("FLASK_ENV=development turns on the debugger in production; remove it")
        return env

    @field_validator("secrets", "release")
    @classmethod
    def _no_duplicates(cls, items: list[str]) -> list[str]:
        return _unique(items)

    @field_validator("shared")
    @classmethod
    def _shared_folders(cls, shared: list[str], info: ValidationInfo) -> list[str]:
        """Plain folder names, none inside another, none of them deploy's, git's or the code's
        (see deploy.config.folders); kept normalized ('instance/' is 'instance')."""
        wsgi = info.data.get("wsgi", "")
        problems = folders.shared_by_name(shared, wsgi, info.data.get("requirements", ""))
        project_dir = (info.context or {}).get("project_dir")
        if not problems and project_dir is not None:
            problems = folders.shared_by_contents(shared, Path(project_dir))
        if problems:
            raise invalid("App", [((index,), why) for index, why in problems])
        return [folders.normalized(entry) for entry in shared]

    @field_validator("release")
    @classmethod
    def _release_fits_flask(cls, release: list[str], info: ValidationInfo) -> list[str]:
        """`flask --app X` exists from Flask 2.2: with the project at hand (validation context
        `project_dir`), a release command using it is refused when the project declares an older Flask."""
        project_dir = (info.context or {}).get("project_dir")
        uses = [i for i, command in enumerate(release) if re.search(r"(^|[\s;&|(])flask\s+--app\b", command)]
        if project_dir is None or not uses:
            return release
        if flask_has_app_option(Path(project_dir)):
            return release
        where, spec = declared_flask(Path(project_dir)) or ("", "")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index in uses:
            fixed = re.sub(r"flask\s+--app\s+(\S+)\s*", r"FLASK_APP=\1 flask ", release[index], count=1)
            problems.append(
                (
                    (index,),
                    f"'flask --app' needs Flask 2.2 or newer and {where} declares flask{spec}: "
                    f"write {fixed.strip()!r}",
                )
            )
        raise invalid("App", problems)

    @field_validator("shared_files")
    @classmethod
    def _shared_files(cls, files: list[str], info: ValidationInfo) -> list[str]:
        """Files kept across releases (a generated key, a SQLite file): none of deploy's, git's or the
        code's, none inside an app.shared folder, none committed in the project (see deploy.folders)."""
        problems = folders.shared_files_by_name(
            files, info.data.get("shared", []), info.data.get("wsgi", ""), info.data.get("requirements", "")
        )
        project_dir = (info.context or {}).get("project_dir")
        if not problems and project_dir is not None:
            problems = folders.shared_files_by_contents(files, Path(project_dir))
        if problems:
            raise invalid("App", [((index,), why) for index, why in problems])
        return [folders.normalized(entry) for entry in files]

    @model_validator(mode="after")
    def _static_serves_public_files_only(self, info: ValidationInfo) -> App:
        """Nginx serves app.static.dir to anyone: never code, data, configuration or secrets. With
        the project's folder (validation context `project_dir`), its files are looked at too."""
        if self.static is None:
            return self
        problems: list[tuple[tuple[str | int, ...], str]] = []
        why = folders.static_by_name(self.static.dir, self.wsgi, self.shared)
        project_dir = (info.context or {}).get("project_dir")
        if why is None and project_dir is not None:
            why = folders.static_by_contents(self.static.dir, Path(project_dir))
        if why is not None:
            problems.append(
                (("static", "dir"), f"{self.static.dir!r} {why}; give a folder of public files only")
            )
        url = self.static.url.rstrip("/")
        if self.health == url or self.health.startswith(url + "/"):
            problems.append(
                (
                    ("static", "url"),
                    f"{self.static.url!r} would serve the health check {self.health!r} (app.health) "
                    "from the static folder; choose another prefix",
                )
            )
        if problems:
            raise invalid("App", problems)
        return self

    @model_validator(mode="after")
    def _secrets_not_in_env(self) -> App:
        both = sorted(set(self.secrets) & set(self.env))
        if both:
            raise ValueError(
                f"{', '.join(both)} is listed in both app.env and app.secrets: "
                "secret values must come from the environment or .env at push time, never deploy.yaml"
            )
        return self
