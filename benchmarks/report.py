"""Write benchmarks/RESULTS.md from the raw JSON in benchmarks/results/ and the notes in findings.md."""

# ruff: noqa: E501  (Markdown table rows and sentences read better unbroken)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAMES = {
    "flask_run": "`flask run` (dev server, threaded)",
    "gunicorn_defaults": "Gunicorn defaults (1 sync worker)",
    "handwritten": "hand-written, per Gunicorn's docs",
    "deploy": "**deploy's stack**",
}


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    if "cpu" not in m:
        return ", ".join(f"{k} {v}" for k, v in m.items())
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, kernel {m['kernel']}, Python {m['python']}; "
        f"run {m['when']}"
    )


def loads(data: dict[str, Any]) -> str:
    return f"load average (1/5/15 min) before {data.get('load_average_before')}, after {data.get('load_average_after')}"


def serving(data: dict[str, Any]) -> list[str]:
    method = data["method"]
    res = data["results"]
    out = [
        "## 1. Serving",
        "",
        f"Machine: {machine(data)}; {loads(data)}.",
        "",
        f"Method: `wrk -t{method['threads']} -c{method['connections']} -d{method['duration_s']}s` from this machine "
        f"to the sandbox host's address, {method['rounds']} rounds, every candidate in turn in each round (so a busy "
        "moment on the machine hits all of them; each round starts with the next candidate); before its turn in "
        "each round a candidate is restarted (fresh processes) and warmed up for 2 s per endpoint; the median of "
        "the rounds. CPU/request: the CPU time of the candidate's systemd units on the host "
        "(Gunicorn or Flask, Nginx, and journald for what they log) during the run, over its requests. Same host, "
        "same release directory, same virtualenv, same app (`playbooks/flaskr`). "
        f"Endpoints: page `{method['endpoints']['page']}` (Jinja template, CSRF token in a signed session cookie, "
        f"a file read) and static `{method['endpoints']['static']}`. {method['note']}",
        "",
        "| candidate | page req/s | page p99 | page CPU/request | static req/s | static p99 | static CPU/request "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cpu(summary: dict[str, Any]) -> str:
        value = summary.get("cpu_us_per_request_median")
        return "n/a" if value is None else f"{value:,.0f} us"

    for name, label in NAMES.items():
        if name not in res:
            continue
        page, static = res[name]["page"]["summary"], res[name]["static"]["summary"]
        errors = sum(s["non_2xx_3xx"] + s["socket_errors"] for s in (page, static))
        out.append(
            f"| {label} | {page['rps_median']:,.0f} | {page['p99_ms_median']:.1f} ms | {cpu(page)} "
            f"| {static['rps_median']:,.0f} | {static['p99_ms_median']:.1f} ms | {cpu(static)} | {errors} |"
        )
    if "deploy" in res:
        ours = res["deploy"]
        out += ["", "deploy's stack against each (median req/s ratio; above 1 = deploy is faster):", ""]
        out += ["| against | page | static |", "|---|---:|---:|"]
        for name in ("flask_run", "gunicorn_defaults", "handwritten"):
            if name in res:
                ratios = [
                    ours[e]["summary"]["rps_median"] / res[name][e]["summary"]["rps_median"]
                    for e in ("page", "static")
                ]
                out.append(f"| {NAMES[name]} | {ratios[0]:.2f}x | {ratios[1]:.2f}x |")
    out += ["", "Raw runs (req/s per round; load average at the start of each run):", ""]
    for name in NAMES:
        if name not in res:
            continue
        for endpoint in ("page", "static"):
            runs = res[name][endpoint]["runs"]
            cells = ", ".join(
                f"{r['rps']:,.0f} (p99 {r['p99_ms']} ms"
                + (
                    f", {r['cpu_us_per_request_total']:,.0f} us CPU"
                    if "cpu_us_per_request_total" in r
                    else ""
                )
                + f", load {r['load_before'][0]})"
                for r in runs
            )
            out.append(f"- {name} {endpoint}: {cells}")
    return out


def push(data: dict[str, Any]) -> list[str]:
    one = data["one_host"]
    tools = ("deploy", "ansible", "pyinfra")
    out = [
        "## 2. Push",
        "",
        f"Machine: {machine(data)}; {loads(data)}. Tools: {data['versions']['ansible-core']}, "
        f"{data['versions']['pyinfra']}.",
        "",
        "Method: the same commits of the example app released by each tool on the same sandbox host, in turn "
        "(deploy into /srv/flaskr, the playbook into /srv/flaskr-ansible, the pyinfra deploy into "
        "/srv/flaskr-pyinfra). Wall time of the whole command, process start to exit; bytes counted on the "
        "host's veth pair (sent = from this machine to the host, received = back). "
        f"Median of {data['runs']} runs where there are several (first push and requirements change: one run each).",
        "",
        "| push | deploy | Ansible | pyinfra | deploy vs best other |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {
        "first": "first push",
        "no_change": "no change",
        "code_change": "one-line code change",
        "requirements_change": "requirements change",
    }
    for key, label in labels.items():
        row = one[key]
        best = min(row["ansible"]["seconds_median"], row["pyinfra"]["seconds_median"])
        cells = [f"{row[t]['seconds_median']:.2f} s" for t in tools]
        out.append(
            f"| {label} | {' | '.join(cells)} | {best / row['deploy']['seconds_median']:.1f}x faster |"
        )
    three = data["three_hosts"]["code_change"]
    best3 = min(three["ansible"]["seconds_median"], three["pyinfra"]["seconds_median"])
    cells = [f"{three[t]['seconds_median']:.2f} s" for t in tools]
    out.append(
        f"| one-line change, 3 hosts | {' | '.join(cells)} | {best3 / three['deploy']['seconds_median']:.1f}x faster |"
    )
    ratio = data["three_over_one"]
    out.append(f"| 3 hosts / 1 host | {ratio['deploy']}x | {ratio['ansible']}x | {ratio['pyinfra']}x | |")
    out += [
        "",
        "Bytes sent to the host (median):",
        "",
        "| push | deploy | Ansible | pyinfra |",
        "|---|---:|---:|---:|",
    ]
    for key, label in labels.items():
        row = one[key]
        out.append(f"| {label} | " + " | ".join(f"{row[t]['bytes_sent_median']:,}" for t in tools) + " |")
    out.append(
        "| one-line change, 3 hosts | "
        + " | ".join(f"{three[t]['bytes_sent_median']:,}" for t in tools)
        + " |"
    )
    load = data.get("under_load")
    if load:
        out += [
            "",
            "Requests that failed while each tool released a one-line change under load (wrk, 8 connections, "
            "the tool's own site on the same host, from 1 s before to 1 s after the command):",
            "",
            "| tool | push time | requests | failed | p99 | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for tool in tools:
            r = load[tool]
            out.append(
                f"| {tool} | {r['push_seconds']:.2f} s | {r['requests']:,} | {r['failed']:,} | {r['p99_ms']} ms "
                f"| {r['max_ms']} ms |"
            )
    out += ["", "Raw runs (seconds, load average at the start):", ""]
    for key in labels:
        for tool in tools:
            listed = ", ".join(
                f"{r['seconds']} s / {r['bytes_sent']:,} B (load {r['load_before'][0]})"
                for r in one[key][tool]["runs"]
            )
            out.append(f"- {key} {tool}: {listed}")
    for tool in tools:
        runs = three[tool]["runs"]
        out.append(
            f"- 3 hosts code_change {tool}: "
            + ", ".join(f"{r['seconds']} s (load {r['load_before'][0]})" for r in runs)
        )
    return out


def push_targets(data: dict[str, Any]) -> list[str]:
    """deploy alone against the push issue's speed targets (benchmarks/bench_push.py)."""
    raw = data.get("raw", {})

    def spread(key: str) -> str:
        runs = raw.get(key)
        return f" ({min(runs):.2f} to {max(runs):.2f})" if runs else ""

    rows = [
        ("first push (new venv from the shipped wheels)", "first_push_1_host", "6 s"),
        ("push with nothing changed", "no_change_push_1_host", "1 s"),
        ("one-line code change", "code_change_push_1_host", "1.5 s"),
        ("requirements change (new venv)", "requirements_change_push_1_host", ""),
        ("one-line code change, 3 hosts", "code_change_push_3_hosts", ""),
        ("one-line code change, right after the previous push", "code_change_push_1_host_back_to_back", ""),
        ("same, 3 hosts", "code_change_push_3_hosts_back_to_back", ""),
    ]
    out = [
        "## 2a. Push speed targets",
        "",
        f"Machine: {data['machine']}, {data['cores']} cores, Python {data['python']}, started {data['started']}; "
        f"load average {data['load_average_before']} before, {data['load_average_after']} after.",
        "",
        "Method: `python benchmarks/bench_push.py --runs N` boots three sandbox hosts, releases the example app "
        "with `deploy setup` + `deploy push`, and times the whole `deploy push` command (process start to exit). "
        f"Median of {data['runs']} runs (first push and requirements change: one run each). A push stops the "
        f"slot it replaced 1 s after its switch; each timed push starts {data.get('settle_seconds', 0):g} s after "
        "the previous one, once that happened, as a user's next push does. The back-to-back rows start at once: "
        "their new slot still runs the release before last and must be stopped first.",
        "",
        "| push | median (min to max), seconds | target |",
        "|---|---:|---:|",
    ]
    for label, key, target in rows:
        if key in data:
            out.append(f"| {label} | {data[key]:.2f}{spread(key)} | {target} |")
    out.append(f"| 3 hosts / 1 host | {data['three_over_one']}x | 1.3x |")
    return out


def zero(data: dict[str, Any]) -> list[str]:
    out = [
        "## 3. Zero downtime",
        "",
        f"Machine: {machine(data)}; {loads(data)}.",
        "",
        "Method: one sandbox host serving the example app over HTTPS with a certificate from the sandbox's ACME "
        "server (pebble, through certbot); wrk with 1 thread and 8 keep-alive connections on `https://flaskr.test/` "
        "from 1 s before each operation to 1 s after it; baseline = the same window with no operation. "
        f"{data['runs']} runs of each; failed = non-2xx/3xx answers plus connect, read, write errors and timeouts.",
        "",
        "| operation | operation time (median) | requests | failed | p99 (median) | worst latency |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in data["results"].items():
        out.append(
            f"| {name} | {r['operation_seconds_median']:.2f} s | {r['requests']:,} | {r['failed']} | "
            f"{r['p99_ms_median']} ms | {r['max_ms_max']} ms |"
        )
    out += ["", "Raw runs:", ""]
    for name, r in data["results"].items():
        out.append(
            f"- {name}: "
            + ", ".join(
                f"{x['requests']} req, {x['failed']} failed {dict((k, v) for k, v in x['errors'].items() if v)}, "
                f"p99 {x['p99_ms']} ms (load {x['load_before'][0]})"
                for x in r["runs"]
            )
        )
    return out


def check_cli(check: dict[str, Any] | None, cli: dict[str, Any] | None) -> list[str]:
    out = ["## 4. Check and CLI", ""]
    if cli:
        r = cli["results"]
        out += [
            f"Machine: {machine(cli)}; {loads(cli)}.",
            "",
            "Method: hyperfine, 3 warm-up runs, then the runs counted; whole commands, interpreter start included.",
            "",
            "| command | median | min | max | runs |",
            "|---|---:|---:|---:|---:|",
        ]
        labels = {
            "help": "`deploy --help`",
            "python_baseline": "`python -c pass` (the interpreter alone)",
            "check_example": "`deploy check playbooks/flaskr` (example app)",
            "check_200_files": "`deploy check` on a generated 200-file app",
        }
        for key, label in labels.items():
            if r.get(key):
                x = r[key]
                out.append(
                    f"| {label} | {x['median_s']:.3f} s | {x['min_s']:.3f} s | {x['max_s']:.3f} s | {x['runs']} |"
                )
    if check:
        out += [
            "",
            f"`benchmarks/bench_check.py` ({check['when']}, {check['runs']} runs; target: {check['target']}):",
            "",
        ]
        out += ["| files | .py files | lines | in process (median) | `deploy check` command (median) |"]
        out += ["|---:|---:|---:|---:|---:|"]
        for row in check["results"]:
            out.append(
                f"| {row['files']} | {row['python_files']} | {row['lines']} | {row['in_process_median_s']:.3f} s | "
                f"{row['command_median_s']:.3f} s |"
            )
    return out


def mutation(data: dict[str, Any]) -> list[str]:
    """The "Mutation score" section: the latest run of each module, then each module's first recorded
    score (before the tests written to kill its survivors), from benchmarks/results/mutation.json."""
    out = [
        "## Mutation score",
        "",
        "mutmut over the modules that decide what happens on hosts, each with the unit tests listed for it in "
        "`benchmarks/mutation.py` (TARGETS), each in its own scratch copy of the repository. Score = killed / "
        "(killed + survived + no tests + timeouts + suspicious). Survivors left on purpose (equivalent mutants, "
        "or not worth a test) are explained in `benchmarks/MUTATION.md`. Rerun one module with "
        "`python benchmarks/mutation.py MODULE --save` (it rewrites this section); the machine is the same "
        "2-core guest as above, shared with other work while these ran. A `--resume` run re-ran, in the scratch "
        "copy a previous run kept, only that run's survivors against the test files as they are now.",
        "",
        "| module | mutated | killed | survived | no tests | timeouts | score | date | commit | command |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for module, row in sorted(data.get("modules", {}).items()):
        scope = (
            "only " + ", ".join(f"`{g.split('.x_')[-1].split('__mutmut')[0]}`" for g in row["functions"])
            if row["functions"]
            else "every function"
        )
        score = "-" if row["score"] is None else f"**{row['score']}%**"
        if row.get("not_checked"):
            score += f" of those checked ({row['not_checked']} not checked: the run was stopped)"
        out.append(
            f"| `{module}` | {scope} | {row['killed']} | {row['survived']} | {row['no_tests']} | {row['timeout']} | "
            f"{score} | {row['date']} | {row['commit']} | `{row['command']}` |"
        )
    first: dict[str, dict[str, Any]] = {}
    for entry in data.get("history", []):
        if entry.get("baseline"):
            first.setdefault(entry["module"], entry)
    if first:
        missing = sorted(set(data.get("modules", {})) - set(first))
        out += [
            "",
            "Before the tests that kill survivors (`tests/unit/*/test_*_mutants.py`, "
            "`tests/unit/push/test_plans_steps.py`), with the unit tests the module had (0 of 14 for "
            "`secretstrength.py`: no listed unit test called it; `push/plans.py`: the ten functions mutated "
            "then; `config/loader.py`: that run stopped after 743 of its 1185 mutants)"
            + (f"; not measured before them: {', '.join(f'`{m}`' for m in missing)}" if missing else "")
            + ":",
            "",
            "| module | killed | of | score | date | commit |",
            "|---|---:|---:|---:|---|---|",
        ]
        for module, entry in sorted(first.items()):
            score = "-" if entry["score"] is None else f"{entry['score']}%"
            out.append(
                f"| `{module}` | {entry['killed']} | {entry['total']} | {score} | {entry['date']} | {entry['commit']} |"
            )
    return out


def installer(data: dict[str, Any]) -> list[str]:
    """Issue #19's first lever: the venv step on one host, pip vs uv (benchmarks/bench_installer.py)."""
    runs = data["runs"]
    label = {
        "pip": "pip (python3 -m venv + pip install --no-index)",
        "uv_cold": "uv, cache empty (uv venv + uv pip install --offline)",
        "uv_warm": "uv, cache filled by a previous venv (hard links)",
        "uv_warm_no_bytecode": "uv warm without --compile-bytecode (not run by a push: the floor)",
    }
    out = [
        "## 2b. The venv step on a host: pip vs uv (#19)",
        "",
        f"Machine: {data['machine']['name']}, {data['machine']['cores']} cores, started "
        f"{data['machine']['started']}; uv {data['uv']}.",
        "",
        "Method: `python benchmarks/bench_installer.py --runs N` boots one sandbox host, pushes "
        f"{data['requirements']} once with each `push.installer` (the host then has the wheels and uv), "
        "and times on the host the very commands a push runs to make and fill a new venv of those "
        "requirements (both compile bytecode). The machine is shared: the load average (1 min) at the start "
        "of each run is given beside it, and the runs of one round follow each other.",
        "",
        "| installer | median, seconds | runs (load average) |",
        "|---|---:|---|",
    ]
    for kind, rows in runs.items():
        shown = ", ".join(f"{r['seconds']:.2f} s ({r['load']:.1f})" for r in rows)
        out.append(f"| {label.get(kind, kind)} | {data['median'][kind]:.2f} | {shown} |")
    return out


def replace_section(text: str, section: list[str]) -> str:
    """`text` (RESULTS.md) with the section that starts with `section[0]` replaced, or appended."""
    heading = section[0]
    lines = text.rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [*section, ""] if end < len(lines) else section
    else:
        lines += ["", *section]
    return "\n".join(lines) + "\n"


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/report.py` from the raw JSON in `benchmarks/results/` "
        "(rerun everything with `sudo python benchmarks/run_all.py`). Every number below comes from a real run "
        "on sandbox hosts (systemd-nspawn, Debian 12, Nginx 1.22) on the machine named in each section.",
        "",
    ]
    findings = HERE / "findings.md"
    if findings.exists():
        lines += [findings.read_text().rstrip(), ""]
    sections = (
        ("serving", serving),
        ("push_compare", push),
        ("push", push_targets),
        ("installer", installer),
        ("zero_downtime", zero),
    )
    for name, render in sections:
        data = load(name)
        if data:
            lines += [*render(data), ""]
    lines += [*check_cli(load("check"), load("cli")), ""]
    data = load("mutation")
    if data:
        lines += [*mutation(data), ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
