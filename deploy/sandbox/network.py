"""The sandbox's network: a /24 per host joined to this machine by a veth pair, routes between the hosts
of one sandbox through this machine, and the firewall rule that admits that traffic and nothing more.

Kernel object names carry the sandbox's tag (`deploy-<tag>-sandbox-N` namespaces, `dsb<tag>-N` links), so
two sandboxes never collide and a scan for leftovers finds only one sandbox's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from deploy.sandbox.processes import run
from deploy.sandbox.rootfs import SandboxError


def free_networks(
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network, count: int
) -> list[ipaddress.IPv4Network]:
    """`count` /24 networks inside `subnet` that overlap no route or address here."""
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default" and route.get("type", "unicast") in ("unicast", "local"):
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(dst, strict=False))
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for addr in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                used.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    if not isinstance(subnet, ipaddress.IPv4Network) or subnet.prefixlen > 24:
        raise SandboxError(f"sandbox subnet must be an IPv4 range of /24 or larger, got {subnet}", code=2)
    free = []
    for candidate in list(subnet.subnets(new_prefix=24))[1:]:
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            free.append(candidate)
            if len(free) == count:
                return free
    raise SandboxError(
        f"only {len(free)} free /24 networks in {subnet} for {count} hosts; "
        "choose another range with DEPLOY_SANDBOX_SUBNET",
        code=2,
    )


def make_network(netns: str, veth: str, gateway: str, address: str, subnet: str) -> None:
    """A network namespace with eth0 and lo up, joined to this machine by a veth pair; the sandbox's
    other hosts (inside `subnet`) are reached through this machine (see `join_hosts`)."""
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "addr", "add", f"{gateway}/24", "dev", veth])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "route", "add", subnet, "via", gateway])


def forward_rule(tag: str) -> list[str]:
    """The firewall rule that lets one sandbox's hosts, and only them, reach each other."""
    links = f"dsb{tag}-+"
    return ["FORWARD", "-i", links, "-o", links, "-j", "ACCEPT"]


def isolation_rule(tag: str) -> list[str]:
    """The firewall rule that keeps one sandbox's hosts from reaching another sandbox's hosts. Without
    it, that depends on the FORWARD policy, which is ACCEPT unless something (Docker) made it DROP."""
    return ["FORWARD", "-i", f"dsb{tag}-+", "-o", "dsb+", "-j", "DROP"]


def join_hosts(tag: str, say: Callable[[str], None]) -> None:
    """Let the hosts reach each other as servers on one private network do: forwarding on this
    machine, and a rule accepting traffic between this sandbox's links (Docker, for one, drops
    forwarded traffic by default). Hosts of other sandboxes stay out: a rule below that one drops what
    this sandbox's links send to any other sandbox's links."""
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    if forward.read_text(encoding="ascii").strip() != "1":
        forward.write_text("1\n", encoding="ascii")
        say("this machine: IPv4 forwarding turned on (sandbox hosts reach each other through it)")
    if shutil.which("iptables") is None:
        return
    # Both inserted at the top, the accept last so that it comes first; removed first so that a
    # second `up` keeps that order.
    _delete_rules(tag)
    run(["iptables", "-I", *isolation_rule(tag)])
    run(["iptables", "-I", *forward_rule(tag)])


def _delete_rules(tag: str) -> None:
    for rule in (forward_rule(tag), isolation_rule(tag)):
        for _ in range(100):
            if subprocess.run(["iptables", "-D", *rule], capture_output=True, check=False).returncode:
                break


def unjoin_hosts(tag: str) -> None:
    """Remove the sandbox's forward and isolation rules (every copy of them)."""
    if shutil.which("iptables") is None:
        return
    _delete_rules(tag)


def firewall_rules(tag: str) -> list[str]:
    """The sandbox's forward and isolation rules, described, those this machine has."""
    if shutil.which("iptables") is None:
        return []
    return [
        " ".join(rule)
        for rule in (forward_rule(tag), isolation_rule(tag))
        if subprocess.run(["iptables", "-C", *rule], capture_output=True, check=False).returncode == 0
    ]


def namespaces(tag: str) -> list[str]:
    """The sandbox's network namespaces that exist."""
    prefix = f"deploy-{tag}-"
    try:
        return sorted(p.name for p in Path("/run/netns").iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def links(tag: str) -> list[str]:
    """The sandbox's veth links that exist on this machine."""
    prefix = f"dsb{tag}-"
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))
