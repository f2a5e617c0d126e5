"""The two guards that keep every test on loopback are themselves in force."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pytest_socket import SocketConnectBlockedError

from tests.support.loopback import violations


@pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")
def test_the_test_process_cannot_open_a_non_loopback_connection() -> None:
    # pytest-socket refuses before any packet is sent (pyproject addopts: --allow-hosts).
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1, never routed


def test_strace_audit_flags_non_loopback_and_dns_but_not_loopback(tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    log.write_text(
        "101 connect(5, {sa_family=AF_INET, sin_port=htons(443), "
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
        "102 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), "
        'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr)}, 28) = 0\n'
        '103 connect(7, {sa_family=AF_UNIX, sun_path="/run/pg/.s.PGSQL.5432"}, 110) = 0\n'
        "104 connect(8, {sa_family=AF_INET, sin_port=htons(53), "
        'sin_addr=inet_addr("10.0.0.2")}, 16) = 0\n'
        "105 sendto(9, ..., {sa_family=AF_INET6, sin6_port=htons(443), "
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr)}, 28) = -1\n'
        "106 connect(10, {sa_family=AF_INET6, sin6_port=htons(80), "
        'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr)}, 28) = 0\n'
    )
    found = violations(log)
    assert len(found) == 2
    assert found[0].startswith("104 ") and found[1].startswith("105 ")
