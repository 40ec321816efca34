"""The wheelhouse of a push: every wheel a host's venv needs, built here for the host's platform.

uv resolves the requirements for the host and the wheels are downloaded in parallel
(deploy.push.uvwheelhouse); where that cannot promise pip's set, `pip download` builds it as before
(the command lines and the cache: deploy.push.pipwheels). Markers are evaluated for the host
(deploy.push.wheels).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from deploy.project.requirements import RequirementSet, top_level
from deploy.push import newest, uvwheelhouse
from deploy.push import wheels as hostmarkers
from deploy.push.artifact import ArtifactError, requirements_hash
from deploy.push.pipwheels import Platform, build_pure_wheels, download_command, no_wheels


def wheelhouse(
    requirements: RequirementSet,
    platform: Platform,
    cache: Path,
    say: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """The wheels that install `requirements` on `platform`: downloaded once, then kept in `cache`.

    The requirements files are written under the cache folder with the project's layout, so pip
    follows includes exactly as it will on the host. uv resolves them for the host and the wheels are
    downloaded in parallel (deploy.push.uvwheelhouse); where that cannot promise pip's set, or with
    DEPLOY_WHEELHOUSE=pip, `pip download` does (`_pip_download`). pip evaluates environment markers
    for the Python that runs it, so the set is then closed over the host's markers
    (`_close_over_markers`); `say` is told of every wheel that adds.
    """
    key = requirements_hash(requirements.key, platform.python_version, platform.tag)
    folder = cache / key
    marker = folder / ".complete"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "requirements-source"
        shown = _write_sources(requirements, source)
        done = False
        if wheelhouse_tool() == "uv":
            try:
                uvwheelhouse.build(source / requirements.install_file, platform, folder, cache, say)
                done = True
            except uvwheelhouse.Fallback as exc:
                if say is not None:
                    say(f"  wheels with pip download: {exc}")
        if not done:
            _pip_download(requirements, platform, folder, source, shown, say)
        _close_over_markers(requirements, platform, folder, source, say)
        marker.write_text(key)
    return {path.name: path for path in sorted(folder.glob("*.whl"))}


def wheelhouse_tool() -> str:
    """What builds the wheelhouse here: $DEPLOY_WHEELHOUSE (uv or pip), uv by default."""
    return "pip" if os.environ.get("DEPLOY_WHEELHOUSE", "").strip().lower() == "pip" else "uv"


def _write_sources(requirements: RequirementSet, source: Path) -> dict[str, str]:
    """The requirements files under `source`, with the project's layout; {written path: project path}."""
    shown: dict[str, str] = {}
    if requirements.generated is not None:
        source.mkdir(exist_ok=True)
        (source / "requirements.txt").write_bytes(requirements.generated)
        shown[str(source / "requirements.txt")] = f"{requirements.entry} [project].dependencies"
    else:
        for path, data in requirements.files.items():
            target = source / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            shown[str(target)] = path
    return shown


def _pip_download(
    requirements: RequirementSet,
    platform: Platform,
    folder: Path,
    source: Path,
    shown: dict[str, str],
    say: Callable[[str], None] | None,
) -> None:
    """The wheels by `pip download` of binary wheels (the pip path); ArtifactError naming what failed."""
    built, checked = folder / ".built", False
    while True:
        result = subprocess.run(
            download_command(
                platform,
                source / requirements.install_file,
                folder,
                # Only once a wheel was built: pip warns about a folder that does not exist.
                find_links=built if built.is_dir() else None,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        # A requirement published only as a source archive: a pure-Python one is built into a
        # wheel here (it fits every host), then the download runs again and finds it.
        missing = _NO_DISTRIBUTION.findall(result.stdout + result.stderr)
        if result.returncode == 0 and not checked:
            # The version pip install would get, when it is newer than the newest wheel.
            checked = True
            if newest.prefer_newest(
                source / requirements.install_file, folder, built, build_pure_wheels, say
            ):
                continue
        if result.returncode == 0 or not missing or not build_pure_wheels(missing, built, say):
            break
    if result.returncode != 0:
        output = result.stdout + result.stderr
        for written, name in shown.items():
            output = output.replace(written, name)
        lines = output.strip().splitlines()[-8:]
        if "Invalid requirement" in output or "Could not open requirements file" in output:
            also = ", ".join(requirements.included)
            raise ArtifactError(
                f"pip cannot read {requirements.entry}"
                + (f" (or what it includes: {also})" if also else "")
                + ":\n  "
                + "\n  ".join(lines)
            )
        raise ArtifactError(no_wheels(platform, lines))


_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")


#: Rounds of downloads for the host's markers before giving up (each follows one more level).
MARKER_ROUNDS = 50


def _close_over_markers(
    requirements: RequirementSet,
    platform: Platform,
    folder: Path,
    source: Path,
    say: Callable[[str], None] | None,
) -> None:
    """Download what the host's markers require and pip left out, until nothing is missing.

    Each round reads `Requires-Dist` of every wheel in `folder`, evaluates the markers for the host
    (`Platform.marker_environment`), and fetches the missing or unsatisfied requirements with
    `pip download --no-deps` (with the app's constraints files); the next round follows their own
    requirements.
    """
    top = top_level(requirements)
    roots = [hostmarkers.Root(line, where) for where, line in top.lines]
    environment = platform.marker_environment()
    listing_dir = source / ".deploy"
    for round_number in range(1, MARKER_ROUNDS + 1):
        present = sorted(folder.glob("*.whl"))
        try:
            wheels = [hostmarkers.read_wheel(path) for path in present]
        except hostmarkers.WheelMetadataError as exc:
            raise ArtifactError(f"cannot read a downloaded wheel: {exc}") from None
        needs = hostmarkers.unmet(wheels, roots, environment)
        if not needs:
            return
        what = f" that its environment markers require: {'; '.join(need.describe() for need in needs)}"
        listing_dir.mkdir(parents=True, exist_ok=True)
        listing = listing_dir / f"host-markers-{round_number}.txt"
        listing.write_text(
            "".join(f"-c ../{path}\n" for path in top.constraints)
            + "".join(f"{need.download_line}\n" for need in needs)
        )
        result = subprocess.run(
            download_command(platform, listing, folder, no_deps=True),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(str(listing), "the host's markers")
            raise ArtifactError(no_wheels(platform, output.strip().splitlines()[-8:], what))
        new = sorted(set(folder.glob("*.whl")) - set(present))
        if not new:
            raise ArtifactError(
                f"no wheel for {platform.describe()}{what}: pip found no other version of "
                f"{', '.join(need.name for need in needs)}"
            )
        if say is not None:
            by_name = {need.name: need for need in needs}
            for path in new:
                wheel = hostmarkers.read_wheel(path)
                need = by_name.get(wheel.name)
                because = f": {need.describe()}" if need is not None else ""
                say(f"  + {path.name} for Python {platform.python_version}{because}")
    raise ArtifactError(
        f"the wheels for {platform.describe()} did not settle after {MARKER_ROUNDS} rounds of the host's "
        "environment markers"
    )
