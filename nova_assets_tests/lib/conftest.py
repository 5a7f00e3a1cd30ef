import random
from collections.abc import Iterator

import pytest

from nova_assets_tests.lib.http_server import DumpServer


@pytest.fixture
def server() -> Iterator[DumpServer]:
    srv = DumpServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def body() -> bytes:
    """3.5 MB of incompressible bytes: several 1 MB reads, so progress and cuts fall mid-body."""
    return random.Random(7).randbytes(3 * (1 << 20) + 512 * 1024)
