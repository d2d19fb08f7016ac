"""Deploy-test helpers: models whose outputs are O(1), so parity tolerances mean something."""

from __future__ import annotations

import pytest

from o1_weights import randomize_weights


@pytest.fixture(scope="session")
def randomize():
    """`randomize_weights`, as a fixture (test modules cannot import a conftest)."""
    return randomize_weights
