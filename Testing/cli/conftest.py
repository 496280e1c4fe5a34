"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest

from storage_scp import StorageSCP


@pytest.fixture
def scp_factory():
    """Start storage SCPs on loopback ports (``make(**StorageSCP arguments)``); all are stopped after the test."""
    servers = []

    def make(**kwargs):
        servers.append(StorageSCP(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()
