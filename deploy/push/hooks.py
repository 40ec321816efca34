"""Hooks around a push or rollback (hooks: in deploy.yaml): run on this machine or on every host."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from deploy.config.model import Config, Hook
from deploy.layout import layout_for
from deploy.plan import Command
from deploy.push.console import Console
from deploy.push.rollout import remote_hook
from deploy.remote.executor import Executor, each, host_name, run_local


def _runner(executor: Executor, command: Command, timeout: float) -> Callable[[str], tuple[int, str]]:
    return lambda host: executor.run(host, command, timeout=timeout)


def run_hooks(
    config: Config,
    executor: Executor | None,
    hooks: list[Hook],
    env: Mapping[str, str],
    printer: Console,
    stage: str,
    verbose: bool = False,
) -> list[str]:
    """Run hooks in order, up to the first that fails; what failed (which hook, where, its exit code
    and its last lines of output), else []. `verbose` shows a hook's output when it succeeds too."""
    layout = layout_for(config)
    for hook in hooks:
        started = time.monotonic()
        results: dict[str, tuple[int, str] | BaseException]
        if hook.on == "local":
            results = {"local": run_local(hook.run, env)}
        else:
            assert executor is not None
            command = remote_hook(layout, hook.run, env)
            results = dict(each([host_name(h) for h in config.server.hosts], _runner(executor, command, 600)))
        seconds = time.monotonic() - started
        failed: list[str] = []
        for where, result in results.items():
            code, output = (255, str(result)) if isinstance(result, BaseException) else result
            lines = output.strip().splitlines()
            if code != 0:
                failed.append(
                    f"{stage} hook failed on {where} (exit {code}): {hook.run}"
                    + "".join(f"\n    {line}" for line in lines[-10:])
                )
            elif verbose and lines:
                printer.say(f"  {stage} hook output on {where}:" + "".join(f"\n    {line}" for line in lines))
        if failed:
            for text in failed:
                printer.say(text)
            return failed
        printer.say(f"  {stage} hook ({hook.on}) {seconds:.2f}s ok: {hook.run}")
    return []
