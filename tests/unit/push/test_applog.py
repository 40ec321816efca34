"""What a failed push shows of the slot's log: the app's traceback (deploy.push.applog), secrets redacted."""

from __future__ import annotations

import pytest

from deploy.push.applog import excerpt, is_traceback, redact

pytestmark = pytest.mark.unit

RELEASE = "/srv/flaskr/releases/20261124-133152-397aa13"
VENV = "/srv/flaskr/venvs/074795537a144a6e/lib/python3.11/site-packages"

#: The block the rendered gunicorn.conf.py writes (its lines as they reach the journal).
BLOCK = [
    "deploy: the app flaskr:create_app() could not be loaded:",
    "  Traceback (most recent call last):",
    f'    File "{VENV}/gunicorn/util.py", line 473, in import_app',
    "      app = app(*args, **kwargs)",
    "            ^^^^^^^^^^^^^^^^^^^^",
    f'    File "{RELEASE}/flaskr/__init__.py", line 53, in create_app',
    "      _ca.config['X'] = 1",
    f'    File "{VENV}/werkzeug/local.py", line 519, in _get_current_object',
    "      raise RuntimeError(unbound_message) from None",
    "  RuntimeError: Working outside of application context.",
    "  ",
    "  This typically means that you attempted to use functionality that needed",
    "  the current application.",
]


def journal(*lines: tuple[str, str]) -> str:
    """`journalctl -o short-unix` text: (identifier[pid], message) per line."""
    return "\n".join(f"1795000000.{i:06d} sandbox-1 {who}: {text}" for i, (who, text) in enumerate(lines))


def test_preloaded_master_the_whole_traceback_without_systemds_lines() -> None:
    log = journal(
        ("systemd[1]", "Starting flaskr@blue.service - flaskr (slot blue, Gunicorn)..."),
        *(("flaskr-blue[273]", line) for line in BLOCK),
        ("systemd[1]", "flaskr@blue.service: Main process exited, code=exited, status=1/FAILURE"),
        ("systemd[1]", "Failed to start flaskr@blue.service - flaskr (slot blue, Gunicorn)."),
    )
    shown = excerpt(log)
    assert shown == "\n".join(BLOCK)
    assert is_traceback(shown)


def test_workers_the_first_block_whole_though_others_write_in_between() -> None:
    """Without preload_app every worker fails the same way, and Gunicorn's master adds a traceback
    of its own (HaltServer) afterwards: the first worker's block is shown, uninterrupted."""
    log = journal(
        ("flaskr-blue[300]", "[2026-11-24 13:35:06 +0000] [300] [INFO] Starting gunicorn 27.0.1"),
        ("flaskr-blue[301]", BLOCK[0]),
        *(item for line in BLOCK[1:] for item in (("flaskr-blue[301]", line), ("flaskr-blue[302]", line))),
        ("flaskr-blue[301]", "[2026-11-24 13:35:06 +0000] [301] [INFO] Worker exiting (pid: 301)"),
        ("flaskr-blue[300]", "Traceback (most recent call last):"),
        ("flaskr-blue[300]", "gunicorn.errors.HaltServer: <HaltServer 'App failed to load.' 4>"),
    )
    assert excerpt(log) == "\n".join(BLOCK)


def test_an_earlier_unmarked_traceback_does_not_win_over_the_marked_one() -> None:
    log = journal(
        ("flaskr-blue[9]", "Traceback (most recent call last):"),
        ("flaskr-blue[9]", "OSError: something while the old run stopped"),
        *(("flaskr-blue[10]", line) for line in BLOCK),
    )
    assert excerpt(log) == "\n".join(BLOCK)


def test_without_the_marker_the_first_python_traceback_up_to_the_next_log_record() -> None:
    """A project's own gunicorn.conf.py: Python's own report of the uncaught error."""
    tb = [
        "Traceback (most recent call last):",
        f'  File "{RELEASE}/flaskr/__init__.py", line 55, in create_app',
        "    raise ConfigProblem('DATABASE_URL is malformed')",
        "flaskr.ConfigProblem: DATABASE_URL is malformed",
    ]
    log = journal(
        ("flaskr-blue[40]", "[2026-11-24 13:31:52 +0000] [40] [INFO] Booting worker with pid: 40"),
        *(("flaskr-blue[40]", line) for line in tb),
        ("flaskr-blue[40]", "[2026-11-24 13:31:52 +0000] [40] [INFO] Worker exiting (pid: 40)"),
    )
    assert excerpt(log) == "\n".join(tb)


def test_no_traceback_the_last_lines() -> None:
    lines = [("flaskr-blue[5]", f'- 500 "GET /health HTTP/1.1" {i}') for i in range(40)]
    shown = excerpt(journal(*lines))
    assert shown.splitlines() == [text for _, text in lines[-15:]]
    assert not is_traceback(shown)


def test_plain_text_works_too() -> None:
    """Output that is not a journal (Gunicorn's stderr in a terminal) has one writer."""
    text = "[2026-11-24 13:35:06 +0000] [1] [INFO] Starting gunicorn\n" + "\n".join(BLOCK) + "\n"
    assert excerpt(text + "[2026-11-24 13:35:06 +0000] [1] [INFO] Worker exiting (pid: 1)\n") == "\n".join(
        BLOCK
    )


def test_a_long_traceback_keeps_its_start_and_its_end() -> None:
    frames = [f'    File "{VENV}/lib{i}.py", line {i}, in f{i}' for i in range(100)]
    block = [BLOCK[0], BLOCK[1], *frames, "  RuntimeError: deep"]
    shown = excerpt(journal(*(("app[1]", line) for line in block))).splitlines()
    assert len(shown) == 60
    assert shown[:2] == block[:2] and shown[-1] == "  RuntimeError: deep"
    assert shown[2] == "    ... (44 lines left out)" and shown[3:] == block[-57:]  # 103 = 2 + 44 + 57


def test_redact_replaces_secret_values_with_their_names() -> None:
    secrets = {"SECRET_KEY": "k3y-0123456789", "DB_PASSWORD": "hunter2-longer", "PIN": "1234", "ID": "123"}
    text = "RuntimeError: login failed with hunter2-longer (key k3y-0123456789), line 12345, pin 1234"
    shown = redact(text, secrets)
    # Values of 4 characters or more are redacted wherever they appear, inside "12345" too
    # (deploy.config.redact.MIN_SECRET_LENGTH; shorter ones are refused at load): "123" is left alone.
    assert shown == "RuntimeError: login failed with <DB_PASSWORD> (key <SECRET_KEY>), line <PIN>5, pin <PIN>"
