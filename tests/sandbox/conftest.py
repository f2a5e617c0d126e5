"""What the Supabase emulator tests share: a Management API caller with the sandbox's token."""

from __future__ import annotations

import pytest

from tests.support.sandbox import SandboxProcess
from tests.support.supabase_api import Management


@pytest.fixture
def api(sandbox: SandboxProcess) -> Management:
    return Management(sandbox)
