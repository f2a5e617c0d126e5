"""Proof that nothing leaves loopback: run a process tree under strace and read its connects.

Every `connect`, `sendto` and `sendmsg` of the traced tree is logged; any IPv4 address outside
127.0.0.0/8 or IPv6 address other than ::1 (v4-mapped loopback allowed) is a violation. DNS
lookups count too: a query to the machine's resolver is traffic leaving loopback.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

_INET = re.compile(r'inet_addr\("([0-9.]+)"\)')
_INET6 = re.compile(r'inet_pton\(AF_INET6, "([0-9a-fA-F:.]+)"')


def strace_prefix(log: Path) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is required for the loopback audit (Debian package 'strace')")
    calls = "trace=connect,sendto,sendmsg"
    return [strace, "-f", "-qq", "--seccomp-bpf", "-e", calls, "-o", str(log)]


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def violations(log: Path) -> list[str]:
    """Lines of the strace log that reach a non-loopback address."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text(errors="replace").splitlines():
        for address in _INET.findall(line) + _INET6.findall(line):
            if not _is_loopback(address):
                found.append(line.strip())
    return found
