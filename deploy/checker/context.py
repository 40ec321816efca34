"""What checks look at: the project, deploy.yaml, the imported app, rendered configs and live hosts.

Each layer is computed at most once and only when a check asks for it; a layer that cannot be had
names the reason, and the runner reports the checks that needed it as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.checker.layers import Layer
from deploy.checker.live_probe import probe as default_probe
from deploy.project.entry import entry_point
from deploy.project.inspect_app import Effective, active_python, inspect, project_python
from deploy.project.scan import Project, scan
from deploy.render.render import RenderFailure, render

if TYPE_CHECKING:
    from deploy.checker.live_probe import LiveFacts
    from deploy.config.model import Config
    from deploy.project.inspect_app import Effective
    from deploy.render.render import RenderFailure


@dataclass
class Context:
    """The inputs of one `deploy check` run; layers are computed lazily and cached."""

    root: Path
    config: Config | None = None
    config_file: str | None = None
    #: --import: run the app factory in a subprocess to read its effective configuration.
    import_app: bool = False
    #: The WSGI target to import when there is no deploy.yaml (`pkg:create_app()`).
    app_spec: str | None = None
    #: The interpreter for --import (the project's virtualenv); None: .venv/venv of the project, the
    #: activated virtualenv, or ours.
    python: str | None = None
    #: --live: the environment whose hosts to visit.
    live: bool = False
    environment: str | None = None
    project_files: Project | None = None
    renderer: Callable[..., dict[str, str]] | None = None
    live_probe: Callable[[Config, Path, str | None], LiveFacts] | None = None
    notes: list[str] = field(default_factory=list)
    #: Why no app was found to import (set with wsgi_spec when there is no deploy.yaml and no --app).
    no_app_why: str | None = field(default=None, init=False, repr=False)
    _rendered: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def project(self) -> Project:
        return self.project_files if self.project_files is not None else scan(self.root)

    # --- effective configuration (--import)

    @cached_property
    def effective(self) -> Effective:
        spec = self.wsgi_spec
        if spec is None:
            return Effective(
                error="no app to import: no deploy.yaml app.wsgi, no --app, and "
                + (self.no_app_why or "no Flask app found")
            )
        python = self.python
        if python is None:
            found = project_python(self.root)
            active = active_python() if found is None else None
            chosen = found or active
            python = str(chosen) if chosen is not None else None
            if found is not None:
                self.notes.append(f"--import used the project's virtualenv: {found}")
            elif active is not None:
                self.notes.append(f"--import used the activated virtualenv ($VIRTUAL_ENV): {active}")
        else:
            self.notes.append(f"--import used {python}")
        loaders = self.project.calls_named("load_dotenv", "read_env", "find_dotenv")
        if loaders and (self.root / ".env").is_file():
            self.notes.append(
                f"the app loads .env itself ({loaders[0].file}:{loaders[0].line}); push never ships "
                ".env, so --import ran on a copy of the project without it"
            )
        return inspect(self.root, spec, self.config, python)

    @cached_property
    def wsgi_spec(self) -> str | None:
        if self.app_spec:
            return self.app_spec
        if self.config is not None:
            return self.config.app.wsgi
        # The entry point `deploy init` would write: never a module whose import runs code.
        spec, self.no_app_why = entry_point(self.root)
        return spec

    # --- rendered configs

    @property
    def config_dir(self) -> Path:
        """The folder of deploy.yaml: render, setup and push take template overrides from its templates/."""
        return (self.root / self.config_file).parent if self.config_file else self.root

    @cached_property
    def rendered(self) -> dict[str, str] | str:
        """{path: text}, or the reason rendering failed (`render_failure` says where)."""
        if self.config is None:
            return "no deploy.yaml"
        failure = self.render_failure
        if failure is not None:
            return f"rendering failed: {failure.message}"
        return self._rendered

    @cached_property
    def render_failure(self) -> RenderFailure | None:
        """Where rendering failed (the template override and line), or None when it renders."""
        if self.config is None:
            return None
        try:
            self._rendered = (self.renderer or render)(self.config, None, self.config_dir)
        except Exception as exc:
            return RenderFailure.of(exc, self.root)
        return None

    def rendered_file(self, suffix: str) -> tuple[str, str] | None:
        """The first rendered (path, text) whose path ends with `suffix`."""
        rendered = self.rendered
        if isinstance(rendered, str):
            return None
        for path, text in sorted(rendered.items()):
            if path.endswith(suffix):
                return path, text
        return None

    # --- live hosts

    @cached_property
    def live_facts(self) -> LiveFacts:
        probe = self.live_probe
        if probe is None:
            probe = default_probe
        assert self.config is not None
        return probe(self.config, self.root, self.environment)

    # --- availability

    def unavailable(self, layer: Layer) -> str | None:
        """Why `layer` cannot be used in this run, or None if it can."""
        if layer is Layer.SOURCE:
            return None if self.project.python else "no Python files in the project"
        if layer is Layer.PROJECT:
            return None
        if layer is Layer.CONFIG:
            return (
                None
                if self.config is not None
                else "no deploy.yaml (write one with 'deploy init', or name it with -c)"
            )
        if layer is Layer.IMPORT:
            return None if self.import_app else "needs --import (runs the app factory in a subprocess)"
        if layer is Layer.EFFECTIVE:
            if not self.import_app:
                return "needs --import (runs the app factory in a subprocess)"
            effective = self.effective
            error = effective.error
            if effective.other:
                return f"the app imported; it is a {effective.other}, not Flask: no Flask config to read"
            if not error:
                return None
            hint = f"; hint: {effective.hint}" if effective.hint else ""
            return f"the app could not be imported, see DEP006 ({error.splitlines()[0][:200]}){hint}"
        if layer in (Layer.RENDERED, Layer.TOOLS):
            if self.config is None:
                return "no deploy.yaml to render configs from"
            rendered = self.rendered
            return rendered if isinstance(rendered, str) else None
        if layer is Layer.LIVE:
            if not self.live:
                return "needs --live -e ENV (visits the hosts over SSH and the site over HTTPS)"
            if self.config is None:
                return "no deploy.yaml naming the hosts"
            error = self.live_facts.error
            return f"the hosts could not be reached ({error})" if error else None
        return f"unknown layer {layer}"


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
