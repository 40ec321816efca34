"""The one loop over the configured services (deploy.push.service_env): each service's variables
come back, their values are hidden from everything printed from then on, and a service that cannot
be read ends the command with the same words whichever service it is."""

from __future__ import annotations

from contextlib import ExitStack
from typing import NoReturn, cast

import pytest

from deploy.plan import Step
from deploy.push.service_env import service_env
from deploy.remote.executor import Executor
from tests.unit.push.test_services_redis import READ, config, fake

pytestmark = pytest.mark.unit


class Failed(Exception):
    pass


class Console:
    as_json = False
    lock_wait: int | None = None

    def __init__(self) -> None:
        self.said: list[str] = []
        self.failed: tuple[str, int] | None = None

    def say(self, message: str, **fields: object) -> None:
        self.said.append(message)

    def result(self, payload: dict[str, object], text: str) -> None:
        self.said.append(text)

    def fail(self, message: str, code: int = 1) -> NoReturn:
        self.failed = (message, code)
        raise Failed(message)

    def exit(self, code: int) -> NoReturn:
        raise Failed(str(code))

    def show(self, steps: list[Step], title: str) -> None:
        self.said.append(title)


def test_a_push_gets_the_url_and_hides_it_and_its_password_from_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console = Console()
    with ExitStack() as hide:
        env = service_env(config("{network: private}"), fake("", READ), console, hide, "push")
        assert list(env) == ["REDIS_URL"]
        assert "Pa55wordPa55wordPa55word" in env["REDIS_URL"]
        print(f"url {env['REDIS_URL']} and Pa55wordPa55wordPa55word")
    out = capsys.readouterr().out
    assert out.startswith("url ") and "Pa55wordPa55wordPa55word" not in out, out
    assert "redis://" not in out, out


def test_a_push_before_setup_changes_nothing_and_says_to_run_setup() -> None:
    console = Console()
    with ExitStack() as hide, pytest.raises(Failed):
        service_env(config(), fake("", ""), console, hide, "push")
    assert console.failed is not None
    message, code = console.failed
    assert code == 1
    assert message.startswith("nothing was changed: services.redis: ")
    assert "run 'deploy setup' first" in message


def test_a_config_without_services_gets_nothing_and_asks_the_hosts_nothing() -> None:
    console = Console()
    no_services = config().model_copy(
        update={"services": config().services.model_copy(update={"redis": None})}
    )
    with ExitStack() as hide:
        assert service_env(no_services, cast(Executor, object()), console, hide, "setup") == {}
    assert console.said == [] and console.failed is None


def test_a_dry_run_shows_the_steps_and_changes_nothing() -> None:
    console = Console()
    with ExitStack() as hide:
        env = service_env(config(), fake("change=new credentials\n", READ), console, hide, "dry-run")
    assert list(env) == ["REDIS_URL"]
    assert console.said == ["dry run: nothing is changed. Services would:"]
