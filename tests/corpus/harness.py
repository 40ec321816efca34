"""Measure `deploy check` and `deploy init` on the real-app corpus against hand-written labels.

For each app with a label (tests/corpus/labels/<name>.yaml) and an unpacked sdist in the cache (fetch.py):
- a copy of the project, committed to a fresh git repository, with the label's `deploy_yaml` as deploy.yaml,
  is checked with `deploy check --format json` (static layers only: no --import, no --live);
- another copy, without deploy.yaml, gets `deploy init`, and the deploy.yaml it writes is compared with the
  label's `init` (entry point, shared paths, secrets, release command). A project whose code has no
  importable WSGI entry (the app is built and served only by its own CLI) is labelled `entry: null`; init
  is right on it ONLY if it stops (exit 2) saying "no importable WSGI entry" and naming the wsgi.py to
  write; any refusal of an app whose label names an entry is wrong, and so is any entry proposed for an
  app labelled null.

Matching rule: a reported finding matches a label entry when the ids are equal, the files are equal (or
neither has one) and, when the label gives a line, the reported line is within +-5 of it. Only findings at
medium or above count (what fails the gate by default). Precision = reported findings that match a
`true_findings` (or `problems`) entry / all reported; recall = `problems` matched by some reported finding /
all problems.

    python -m tests.corpus.harness            # the table
    python -m tests.corpus.harness --json     # the same, as JSON
    python -m tests.corpus.harness flaskbb    # only these apps
    python -m tests.corpus.harness --by-check # also precision and recall per check id
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tests.corpus.fetch import LABELS_DIR, App, is_fetched, load_apps, project_dir

HERE = Path(__file__).resolve().parent
TARGETS_FILE = HERE / "targets.yaml"
REPO = HERE.parent.parent
#: Severities that count: the gate's default threshold (--fail-on medium) and above.
COUNTED = ("medium", "high", "critical")
LINE_TOLERANCE = 5
CHECK_TIMEOUT = 300


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) else value


Text = Annotated[str, BeforeValidator(_to_str)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelFinding(_Model):
    """A true finding (or a known problem): the check id, where, and the code that proves it."""

    id: str = Field(pattern=r"^[A-Z]+[0-9]{3}$")
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    proof: str | None = None


class FalseFinding(_Model):
    """A finding deploy reports today that is wrong for this app, and why (from the code)."""

    id: str = Field(pattern=r"^[A-Z]+[0-9]{3}$")
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    reason: str = Field(min_length=10)


class InitLabel(_Model):
    """What `deploy init` must propose."""

    #: None: the code has no importable WSGI entry (its own CLI builds and serves the app); then init is
    #: right only when it says so (see NO_ENTRY), and the other keys are not scored (nothing is written).
    entry: str | None = Field(pattern=r"^[\w.]+:[\w.]+(\(.*\))?$")
    entry_why: str = Field(min_length=10)
    #: Other spellings of the same, equally right entry point (e.g. `wsgi:app` and `pkg:create_app()`).
    entry_also: list[str] = Field(default_factory=list)
    shared: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    release_command: str | None = None
    #: Other release commands that are equally right (e.g. `flask db upgrade` and the app's own CLI).
    release_also: list[str] = Field(default_factory=list)


class Label(_Model):
    app: str
    version: Text
    root: str
    deploy_yaml: str
    init: InitLabel
    runnable: bool
    runnable_why: str = Field(min_length=5)
    true_findings: list[LabelFinding] = Field(default_factory=list)
    problems: list[LabelFinding] = Field(default_factory=list)
    false_findings: list[FalseFinding] = Field(default_factory=list)
    #: Free-form notes for the reader (not scored).
    notes: str | None = None

    @field_validator("deploy_yaml")
    @classmethod
    def _yaml_mapping(cls, value: str) -> str:
        parsed = yaml.safe_load(value)
        if not isinstance(parsed, dict) or "app" not in parsed:
            raise ValueError("deploy_yaml must be a YAML mapping with an 'app' key")
        return value


def label_path(name: str) -> Path:
    return LABELS_DIR / f"{name}.yaml"


def load_label(path: Path) -> Label:
    return Label.model_validate(yaml.safe_load(path.read_text()))


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    id: str
    severity: str
    file: str | None
    line: int | None
    message: str = ""


def matches(reported: Reported, entry: LabelFinding | FalseFinding) -> bool:
    """The matching rule: same id, same file (or both without one), line within +-5 when labelled."""
    if reported.id != entry.id:
        return False
    if (reported.file or None) != (entry.file or None):
        return False
    if entry.line is not None:
        return reported.line is not None and abs(reported.line - entry.line) <= LINE_TOLERANCE
    return True


class _Rates:
    """Precision and recall from the counts (an app's, or the corpus total's)."""

    reported: int
    true: int
    problems: int
    found: int

    @property
    def precision(self) -> float:
        return self.true / self.reported if self.reported else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.problems if self.problems else 1.0


@dataclass
class Score(_Rates):
    app: str
    reported: int = 0
    true: int = 0
    labelled_false: int = 0
    problems: int = 0
    found: int = 0
    init_right: bool = False
    init_wrong: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    error: str | None = None
    #: Per check id: [reported, true, problems, problems found].
    by_check: dict[str, list[int]] = field(default_factory=dict)


def _where(item: Reported | LabelFinding) -> str:
    return f"{item.id} {item.file or '(project)'}" + (f":{item.line}" if item.line else "")


def score_check(label: Label, findings: Iterable[Reported], score: Score) -> None:
    """Precision and recall of one app's report against its label (fills `score`).

    Precision is over the findings at medium or above (what fails the default gate); a labelled problem
    counts as found when deploy reports it at any severity (the report shows it, the gate may not fail
    on it: a check under 90% precision on the corpus reports below the gate, issue #16)."""
    findings = list(findings)
    counted = [f for f in findings if f.severity in COUNTED]
    score.reported = len(counted)
    for f in counted:
        row = score.by_check.setdefault(f.id, [0, 0, 0, 0])
        row[0] += 1
        # A labelled problem is a true production problem (CORPUS.md): reporting it is right.
        if any(matches(f, t) for t in [*label.true_findings, *label.problems]):
            score.true += 1
            row[1] += 1
        elif any(matches(f, x) for x in label.false_findings):
            score.labelled_false += 1
        else:
            score.unlabelled.append(_where(f))
    score.problems = len(label.problems)
    for p in label.problems:
        row = score.by_check.setdefault(p.id, [0, 0, 0, 0])
        row[2] += 1
        if any(matches(f, p) for f in findings):
            score.found += 1
            row[3] += 1
        else:
            score.missed.append(_where(p))


def _norm_paths(paths: Iterable[str]) -> set[str]:
    return {p.strip().strip("/").removeprefix("./") for p in paths}


def _norm_cmd(cmd: str) -> str:
    return " ".join(cmd.split())


def score_init(label: InitLabel, proposed: dict[str, Any], score: Score) -> None:
    """Compare the `app:` section `deploy init` wrote with the label (fills init_right / init_wrong)."""
    wrong = []
    entry = proposed.get("wsgi")
    if entry not in {label.entry, *label.entry_also}:
        wrong.append(f"entry {entry!r} (label {label.entry!r})")
    # app.shared (folders) and app.shared_files (an SQLite file at the root) are both kept across
    # releases; labels list both kinds under shared.
    shared = _norm_paths([*(proposed.get("shared") or []), *(proposed.get("shared_files") or [])])
    if shared != _norm_paths(label.shared):
        wrong.append(f"shared {sorted(shared)} (label {sorted(_norm_paths(label.shared))})")
    secrets = set(proposed.get("secrets") or [])
    if not set(label.secrets) <= secrets:
        wrong.append(f"secrets missing {sorted(set(label.secrets) - secrets)}")
    release = [_norm_cmd(str(c)) for c in proposed.get("release") or []]
    accepted = {_norm_cmd(c) for c in [label.release_command or "", *label.release_also] if c}
    if (not release and label.release_command is not None) or (release and not accepted & set(release)):
        wrong.append(f"release {release} (label {label.release_command!r})")
    score.init_wrong = wrong
    score.init_right = not wrong


# --- running deploy ----------------------------------------------------------------------------


def _git_repo(src: Path, dest: Path, deploy_yaml: str | None) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    for existing in ("deploy.yaml", "deploy-check.yaml"):
        (dest / existing).unlink(missing_ok=True)
    if deploy_yaml is not None:
        (dest / "deploy.yaml").write_text(deploy_yaml)
    env = {**os.environ, "GIT_AUTHOR_NAME": "corpus", "GIT_AUTHOR_EMAIL": "corpus@example.com",
           "GIT_COMMITTER_NAME": "corpus", "GIT_COMMITTER_EMAIL": "corpus@example.com"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A", "-f"],
                ["git", "commit", "-q", "--no-verify", "--no-gpg-sign", "-m", "sdist"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def _deploy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "deploy", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CHECK_TIMEOUT, check=False)


def run_check(project: Path) -> list[Reported]:
    out = project / ".corpus-check.json"
    result = _deploy(["check", "--format", "json", "-o", str(out), "."], project)
    if result.returncode not in (0, 1) or not out.is_file():
        raise RuntimeError(f"deploy check exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    report = json.loads(out.read_text())
    return [Reported(id=f["id"], severity=f["severity"], file=f.get("file"), line=f.get("line"),
                     message=f.get("message", "")) for f in report["findings"]]


#: What `deploy init` says (exit 2) when a project has no importable WSGI entry, and what it must name.
NO_ENTRY = "no importable WSGI entry"
NO_ENTRY_FIX = "wsgi.py"


def score_refusal(label: InitLabel, message: str, score: Score) -> None:
    """init wrote nothing (exit 2). Right ONLY when the label says the code has no importable entry
    (entry: null) and init says so and names what to write (a wsgi.py); any other refusal is wrong."""
    if label.entry is None and NO_ENTRY in message and NO_ENTRY_FIX in message:
        score.init_wrong, score.init_right = [], True
    else:
        score.init_wrong, score.init_right = [f"init refused: {message[:200]}"], False


class InitRefused(Exception):
    """`deploy init` stopped with a clear error (exit 2): a wrong answer to score, not a harness failure."""


def run_init(project: Path) -> dict[str, Any]:
    result = _deploy(["init", "."], project)
    written = project / "deploy.yaml"
    if result.returncode == 2:
        lines = result.stderr.strip().splitlines() or ["(no message)"]
        raise InitRefused(lines[0])
    if result.returncode != 0 or not written.is_file():
        raise RuntimeError(f"deploy init exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    config = yaml.safe_load(written.read_text())
    app = config.get("app") if isinstance(config, dict) else None
    return app if isinstance(app, dict) else {}


def measure(app: App, label: Label) -> tuple[Score, list[Reported]]:
    score = Score(app=app.name)
    findings: list[Reported] = []
    src = project_dir(app)
    with tempfile.TemporaryDirectory(prefix=f"corpus-{app.name}-") as tmp:
        try:
            findings = run_check(_git_repo(src, Path(tmp) / "check", label.deploy_yaml))
            score_check(label, findings, score)
            # init names the app after its folder: give it the app's own name.
            try:
                proposed = run_init(_git_repo(src, Path(tmp) / "init" / app.name, None))
            except InitRefused as refused:
                score_refusal(label.init, str(refused), score)
            else:
                score_init(label.init, proposed, score)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            score.error = str(exc)
    return score, findings


def measure_all(names: list[str] | None = None, jobs: int = 2) -> list[Score]:
    """Every app with a label and a fetched sdist (or only `names`), in apps.json's order."""
    todo = []
    for app in load_apps():
        if names and app.name not in names:
            continue
        path = label_path(app.name)
        if not path.is_file() or not is_fetched(app):
            continue
        todo.append((app, load_label(path)))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [score for score, _ in pool.map(lambda pair: measure(*pair), todo)]


@dataclass
class Totals(_Rates):
    apps: int
    reported: int
    true: int
    problems: int
    found: int
    init_right: int


def totals(scores: list[Score]) -> Totals:
    return Totals(apps=len(scores), reported=sum(s.reported for s in scores),
                  true=sum(s.true for s in scores), problems=sum(s.problems for s in scores),
                  found=sum(s.found for s in scores), init_right=sum(s.init_right for s in scores))


def table(scores: list[Score]) -> str:
    """The Markdown table: per app and in total."""
    rows = ["| app | reported (medium+) | true | labelled false | unlabelled | precision | problems found "
            "| recall | init |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in scores:
        init = "error: " + (s.error or "")[:60] if s.error else ("right" if s.init_right else "WRONG")
        rows.append(f"| {s.app} | {s.reported} | {s.true} | {s.labelled_false} | {len(s.unlabelled)} "
                    f"| {s.precision:.0%} | {s.found}/{s.problems} | {s.recall:.0%} | {init} |")
    t = totals(scores)
    false = sum(s.labelled_false for s in scores)
    unlabelled = sum(len(s.unlabelled) for s in scores)
    rows.append(f"| **total** | {t.reported} | {t.true} | {false} | {unlabelled} | **{t.precision:.0%}** "
                f"| {t.found}/{t.problems} | **{t.recall:.0%}** | **{t.init_right}/{t.apps}** |")
    return "\n".join(rows)


def by_check(scores: list[Score]) -> dict[str, list[int]]:
    """Per check id over the corpus: [reported, true, problems, problems found]."""
    total: dict[str, list[int]] = {}
    for s in scores:
        for check_id, row in s.by_check.items():
            into = total.setdefault(check_id, [0, 0, 0, 0])
            for i, n in enumerate(row):
                into[i] += n
    return dict(sorted(total.items()))


def check_table(scores: list[Score]) -> str:
    """Precision and recall per check (the issue lowers a check under 90% precision)."""
    rows = ["| check | reported (medium+) | true | precision | problems found | recall |",
            "|---|---:|---:|---:|---:|---:|"]
    for check_id, (reported, true, problems, found) in by_check(scores).items():
        precision = f"{true / reported:.0%}" if reported else "-"
        recall = f"{found / problems:.0%}" if problems else "-"
        rows.append(f"| {check_id} | {reported} | {true} | {precision} | {found}/{problems} | {recall} |")
    return "\n".join(rows)


def details(scores: list[Score]) -> str:
    lines = []
    for s in scores:
        parts = [f"  init: {w}" for w in s.init_wrong]
        parts += [f"  missed problem: {m}" for m in s.missed]
        parts += [f"  unlabelled finding: {u}" for u in s.unlabelled]
        if s.error:
            parts.append(f"  error: {s.error}")
        if parts:
            lines.append(f"{s.app}:")
            lines.extend(parts)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m tests.corpus.harness", description=summary)
    parser.add_argument("apps", nargs="*", help="only these apps (default: every labelled, fetched app)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--jobs", type=int, default=2, help="apps measured at once (default 2)")
    parser.add_argument("--by-check", action="store_true", help="also print precision and recall per check")
    args = parser.parse_args(argv)
    missing = [a.name for a in load_apps() if (not args.apps or a.name in args.apps) and not is_fetched(a)]
    if missing:
        print(f"not fetched (python -m tests.corpus.fetch): {', '.join(missing)}", file=sys.stderr)
    scores = measure_all(args.apps or None, jobs=args.jobs)
    if args.json:
        t = totals(scores)
        apps = [{**asdict(s), "precision": s.precision, "recall": s.recall} for s in scores]
        total = {**asdict(t), "precision": t.precision, "recall": t.recall, "by_check": by_check(scores)}
        print(json.dumps({"apps": apps, "total": total}, indent=2))
    else:
        print(table(scores))
        if args.by_check:
            print("\n" + check_table(scores))
        extra = details(scores)
        if extra:
            print("\n" + extra)
    return 1 if any(s.error for s in scores) else 0


if __name__ == "__main__":
    raise SystemExit(main())
