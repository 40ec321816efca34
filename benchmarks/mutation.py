"""Mutation testing of the modules that decide what happens on hosts (mutmut 3).

Run from anywhere:  python benchmarks/mutation.py [MODULE...] [--json] [--functions GLOB...] [--save]
  MODULE is a target's name (`plan_push`, `rollout`, ...; see TARGETS) or its path; none = every target.

Each target runs in its own scratch copy of the repository (mutmut 3 writes its mutants to ./mutants,
so two targets, or a target and your work tree, must never share a folder), with only the unit tests
listed for it: mutmut first runs them once to learn which test covers which function, then runs,
for each mutant, only the tests that cover the mutated function. The score is killed / (killed +
survived + timeouts + suspicious); `no tests` mutants (code no listed test reaches) count as survived.

Survivors are listed with `--survivors` (the name to give `mutmut show NAME` in the scratch folder,
which --keep leaves in place). benchmarks/MUTATION.md explains the survivors that are left on purpose.
`--save` writes benchmarks/results/mutation.json, which benchmarks/report.py renders into RESULTS.md.

The package layout is being moved into sub-packages (LAYOUT.md): TARGETS is the one place that
names module paths; tests/unit/test_mutation_targets.py fails when one of them no longer exists.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"


@dataclass(frozen=True)
class Target:
    """One module to mutate and the unit tests that cover it (paths relative to the repository)."""

    module: str
    tests: tuple[str, ...]
    #: Mutant-name globs (mutmut's `deploy.x.x_function__mutmut_*`) to restrict the run to; empty = all.
    functions: tuple[str, ...] = field(default=())
    #: More pytest arguments for every run of this target's tests (e.g. `-k` to leave out slow tests
    #: that start a process: mutmut runs the tests that cover a function once per mutant of it).
    pytest_args: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return Path(self.module).stem


_PUSH_TESTS = (
    "tests/unit/push/test_plans.py",
    "tests/unit/cli/test_push.py",
    "tests/unit/push/test_hooks.py",
    "tests/unit/push/test_lock.py",
    "tests/unit/push/test_rollout.py",
)

#: Left out of the config targets' runs: a process started per test, a whole project checked, or a
#: property test of every string field (seconds per mutant of any validator helper).
_SLOW_CONFIG_TESTS = (
    "not test_the_cli_refuses_with_one_line_and_exit_2"
    " and not test_deploy_check_reports_it_as_a_critical_security_finding"
    " and not test_a_control_character_in_any_string_field_is_refused"
    " and not test_any_markup_is_judged_without_an_exception"
    " and not test_the_check_reads_templates_and_css_but_not_email_templates"
    " and not test_the_example_app_loses_nothing_under_the_default_policy"
)

#: The modules that decide what happens on hosts, each with the unit tests that cover it.
TARGETS: tuple[Target, ...] = (
    # What a push and a rollback decide per host: setup preconditions, rollback target, pruning, and
    # the switch, revert and clean-up steps (plan assembly around them is covered by the same tests).
    # The plans are split along their phases (deploy/push/plan_*.py): one target each, same tests.
    *(
        Target(
            f"deploy/push/{module}.py",
            (*_PUSH_TESTS, "tests/unit/push/test_plans_mutants.py", "tests/unit/push/test_plans_steps.py"),
            functions=tuple(f"deploy.push.{module}.x_{name}__mutmut_*" for name in names),
        )
        for module, names in (
            ("plan_setup", ("config_steps", "setup_steps", "require_setup", "refuse_hosts")),
            ("plan_push", ("host_push", "_release_files", "_shared", "_venv", "_metadata")),
            (
                "plan_switch",
                (
                    "_start_steps",
                    "_served_marker",
                    "slot_env_content",
                    "rollback_target",
                    "_keep",
                    "prune_list",
                    "_switch_step",
                    "_revert_steps",
                    "_finish_steps",
                ),
            ),
            ("plan_rollback", ("host_rollback", "rollback_plan")),
        )
    ),
    Target(
        "deploy/push/rollout.py",
        (
            "tests/unit/push/test_rollout.py",
            "tests/unit/cli/test_push.py",
            "tests/unit/push/test_plans.py",
            "tests/unit/push/test_rollout_mutants.py",
        ),
    ),
    # The lock builders only: the rest of commands.py is shell argv and the programs it embeds, which
    # the host tests run (a unit test can only compare their text).
    Target(
        "deploy/remote/commands.py",
        (
            "tests/unit/push/test_lock.py",
            "tests/unit/push/test_plans.py",
            "tests/unit/remote/test_commands_mutants.py",
        ),
        functions=tuple(
            f"deploy.remote.commands.x_{name}__mutmut_*"
            for name in ("lock_holder", "guarded", "lock_release_forced")
        ),
    ),
    # Validation of deploy.yaml. mutmut leaves decorated functions alone (the pydantic validators), so
    # what is mutated is the helpers they call and the loader's parsing and error reporting. The tests
    # that start `python -m deploy` or run a check over a project (seconds each, and they cover most
    # functions) are left out of the mutation run: everything they assert about the loader and the
    # model is asserted in process by the tests kept (tests/unit/config/test_config_mutants.py).
    # deploy/config/model/ is one module per section; only three hold functions mutmut mutates (the
    # other sections are classes with decorated validators only): the value types' helpers (base),
    # Config's own methods and the service helpers (root), and the services' name checks (services).
    *(
        Target(
            f"deploy/config/model/{name}.py",
            (
                "tests/unit/config/test_model.py",
                "tests/unit/config/test_loader.py",
                "tests/unit/config/test_csp.py",
                "tests/unit/config/test_config_mutants.py",
                "tests/unit/config/test_jobs.py",
            ),
            pytest_args=("-k", _SLOW_CONFIG_TESTS),
        )
        for name in ("base", "root", "services")
    ),
    # The loader was split (2026-12-07): reading and parsing YAML is config/document.py, the sandbox's
    # overlay config/sandbox_overlay.py; the same tests cover the three.
    *(
        Target(
            module,
            (
                "tests/unit/config/test_model.py",
                "tests/unit/config/test_loader.py",
                "tests/unit/config/test_config_mutants.py",
                "tests/unit/config/test_overlays.py",
            ),
            pytest_args=("-k", _SLOW_CONFIG_TESTS),
        )
        for module in (
            "deploy/config/loader.py",
            "deploy/config/document.py",
            "deploy/config/sandbox_overlay.py",
        )
    ),
    Target(
        "deploy/config/redact.py",
        (
            "tests/unit/config/test_redact.py",
            "tests/unit/push/test_hooks.py",
            "tests/unit/config/test_redact_mutants.py",
        ),
    ),
    Target(
        "deploy/config/secretfiles.py",
        (
            "tests/unit/render/test_render_docker.py",
            "tests/unit/push/test_artifact.py",
            "tests/unit/config/test_secrets_mutants.py",
        ),
    ),
    Target(
        "deploy/config/secrets.py",
        ("tests/unit/config/test_model.py", "tests/unit/config/test_secrets_mutants.py"),
    ),
    # What HTTPS setup runs and writes on hosts (certbot command lines, the account it shares, the files,
    # modes and owners of each step); not the local certificate checks of `deploy certs`/`check --live`.
    Target(
        "deploy/tls/steps.py",
        (
            "tests/unit/tls/test_steps.py",
            "tests/unit/cli/test_push_setup.py",
            "tests/unit/tls/test_steps_mutants.py",
        ),
        functions=tuple(
            f"deploy.tls.steps.x_{name}__mutmut_*"
            for name in (
                "tls_settings",
                "acme_server",
                "certificate_files",
                "deploy_hook_script",
                "challenge_snippet",
                "_certbot",
                "register_command",
                "show_account_command",
                "parse_account",
                "jwk_thumbprint",
                "certonly_command",
                "has_certificate_command",
                "acme_prepare_step",
                "register_step",
                "share_account_step",
                "obtain_step",
                "own_certificate_step",
                "site_step",
            )
        ),
    ),
    Target(
        "deploy/tls/certs.py",
        (
            "tests/unit/tls/test_steps.py",
            "tests/unit/cli/test_push_setup.py",
            "tests/unit/tls/test_steps_mutants.py",
        ),
    ),
)

#: mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), reduced to what the score needs.
_STATUS = {
    1: "killed",
    3: "killed",
    37: "killed",
    0: "survived",
    5: "no_tests",
    33: "no_tests",
    34: "skipped",
}
_TIMEOUTS = {36, -24, 24, 152, 255}


def status_of(exit_code: int | None) -> str:
    if exit_code is None:
        return "not_checked"
    if exit_code in _TIMEOUTS:
        return "timeout"
    return _STATUS.get(exit_code, "suspicious")


def find(names: list[str]) -> list[Target]:
    if not names:
        return list(TARGETS)
    by_name = {t.name: t for t in TARGETS} | {t.module: t for t in TARGETS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        sys.exit(f"unknown target(s): {', '.join(unknown)}; one of: {', '.join(t.name for t in TARGETS)}")
    return [by_name[n] for n in names]


def scratch_copy(target: Target, into: Path) -> None:
    """The repository's tracked files (and untracked, not ignored ones) in `into`, with a [tool.mutmut]."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.is_file():
            continue
        dest = into / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    # The package's data folders live beside it (pyproject's package-dir); inside mutants/ the
    # package must find them under its own folder.
    for data in ("templates", "checks"):
        (into / "deploy" / data).symlink_to(into / data)
    # Tests that run `python -m deploy` in a temporary folder start a process that imports the mutants:
    # mutmut's code in it reads its configuration from the current folder. This reads it from mutants/.
    (into / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    tests = [t for t in target.tests if (into / t).exists()]
    # mutmut runs the tests inside mutants/: whatever they read beside the package goes there too.
    beside = sorted(p.name for p in into.iterdir() if p.name not in ("deploy", "tests", "pyproject.toml"))
    conf = [
        "",
        "[tool.mutmut]",
        'source_paths = ["deploy"]',
        f"only_mutate = [{json.dumps(target.module)}]",
        *_test_options(target, tests),
        "use_git_change_detection = false",
        f"also_copy = {json.dumps(beside)}",
        "",
    ]
    pyproject = into / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n".join(conf))


def _test_options(target: Target, tests: list[str]) -> list[str]:
    """The [tool.mutmut] lines that say which tests run, and how."""
    return [
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', '-q', '-x', *target.pytest_args])}",
    ]


_SITECUSTOMIZE = """\
import os

if os.environ.get("MUTANT_UNDER_TEST"):
    _here = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    try:
        from mutmut.configuration import config

        config()
    finally:
        os.chdir(_here)
"""


def refresh(target: Target, work: Path) -> None:
    """Resume in a kept copy: the target's test files as they are now, and its survivors to run again
    (mutmut keeps what it killed)."""
    for test in target.tests:
        if (ROOT / test).exists():
            for dest in (work / test, work / "mutants" / test):
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / test, dest)
    # mutmut keeps which tests cover which function from its first run, and reads the test files to
    # run from the copy's pyproject.toml: both as the target says now, or the tests of a new test file
    # would never run against the survivors.
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    tests = [t for t in target.tests if (work / t).exists()]
    pyproject = work / "pyproject.toml"
    kept = [
        line
        for line in pyproject.read_text().splitlines()
        if not line.startswith(("pytest_add_cli_args_test_selection = ", "pytest_add_cli_args = "))
    ]
    at = kept.index("[tool.mutmut]") + 1
    pyproject.write_text("\n".join([*kept[:at], *_test_options(target, tests), *kept[at:]]) + "\n")
    meta = work / "mutants" / (target.module + ".meta")
    if meta.exists():
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        data["exit_code_by_key"] = {
            k: (None if status_of(v) in ("survived", "no_tests") else v) for k, v in codes.items()
        }
        meta.write_text(json.dumps(data))


def run_target(
    target: Target, *, keep: bool, functions: tuple[str, ...], verbose: bool, resume: Path | None = None
) -> dict[str, Any]:
    work = resume or Path(tempfile.mkdtemp(prefix=f"mutation-{target.name}-"))
    keep = keep or resume is not None
    started = time.monotonic()
    try:
        if resume is None:
            scratch_copy(target, work)
        else:
            refresh(target, work)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        globs = functions or target.functions
        cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *globs]
        out = subprocess.run(cmd, cwd=work, env=env, capture_output=not verbose, text=True)
        meta = work / "mutants" / (target.module + ".meta")
        if not meta.exists():
            tail = (out.stdout or "")[-3000:] + (out.stderr or "")[-3000:]
            raise RuntimeError(
                f"mutmut wrote no results for {target.module} (exit {out.returncode}):\n{tail}"
            )
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if globs:
            codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatchcase(k, g) for g in globs)}
        counts = dict.fromkeys(
            ("killed", "survived", "no_tests", "timeout", "suspicious", "skipped", "not_checked"), 0
        )
        survivors = []
        for mutant, code in sorted(codes.items()):
            status = status_of(code)
            counts[status] += 1
            if status in ("survived", "no_tests", "suspicious", "not_checked"):
                survivors.append({"mutant": mutant, "status": status})
        judged = sum(counts[k] for k in ("killed", "survived", "no_tests", "timeout", "suspicious"))
        return {
            "module": target.module,
            "tests": list(target.tests),
            "functions": list(globs),
            **counts,
            "total": len(codes),
            "score": round(100 * counts["killed"] / judged, 1) if judged else None,
            "seconds": round(time.monotonic() - started),
            "survivors": survivors,
            "scratch": str(work) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def commit() -> str:
    """HEAD, with "+changes" when tracked or new files (other than the results) differ from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":!benchmarks/results", ":!benchmarks/RESULTS.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+changes" if status else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="target names or paths (default: every target)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--functions", nargs="*", default=(), help="mutant-name globs to restrict to")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    parser.add_argument("--keep", action="store_true", help="keep each scratch copy (to `mutmut show` there)")
    parser.add_argument(
        "--save", action="store_true", help=f"merge the results into {RESULTS.relative_to(ROOT)}"
    )
    parser.add_argument("--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument(
        "--resume", type=Path, help="re-run the survivors in a copy kept by --keep (one MODULE), new tests"
    )
    args = parser.parse_args()
    results = []
    for target in find(args.modules):
        if not args.json:
            print(f"== {target.module} ({len(target.tests)} test files)", flush=True)
        row = run_target(
            target, keep=args.keep, functions=tuple(args.functions), verbose=args.verbose, resume=args.resume
        )
        results.append(row)
        if not args.json:
            print(
                f"   killed {row['killed']}  survived {row['survived']}  no tests {row['no_tests']}  "
                f"timeouts {row['timeout']}  suspicious {row['suspicious']}  total {row['total']}  "
                f"score {row['score']}%  ({row['seconds']} s)",
                flush=True,
            )
            if args.survivors:
                for s in row["survivors"]:
                    print(f"     {s['status']:>10}  {s['mutant']}")
            if row["scratch"]:
                print(f"   scratch copy: {row['scratch']}")
    run = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "command": "python " + " ".join(["benchmarks/mutation.py", *sys.argv[1:]]),
        "mutmut": _mutmut_version(),
        "results": results,
    }
    if args.save:
        saved: dict[str, Any] = (
            json.loads(RESULTS.read_text()) if RESULTS.exists() else {"modules": {}, "history": []}
        )
        for row in results:
            stamp = {k: v for k, v in run.items() if k != "results"}
            saved["modules"][row["module"]] = {**stamp, **row, "scratch": None}
            saved["history"].append(
                {**stamp, **{k: row[k] for k in ("module", "killed", "total", "score", "functions")}}
            )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
        write_section(saved)
    if args.json:
        print(json.dumps(run, indent=2))
    return 0


def write_section(saved: dict[str, Any]) -> None:
    """Rewrite the "Mutation score" section of benchmarks/RESULTS.md (rendered by report.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report

    results_md = ROOT / "benchmarks" / "RESULTS.md"
    results_md.write_text(report.replace_section(results_md.read_text(), report.mutation(saved)))


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


if __name__ == "__main__":
    sys.exit(main())
