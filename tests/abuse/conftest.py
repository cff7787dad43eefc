"""Fixtures for the abuse tests: the real defended demo model and its reference profile, built once per session
(training takes a few seconds). Pure numpy: no database."""

import pytest

from abuse import simulation
from abuse.extraction import InputProfile
from serving.ml.mlp import MLPWeights


@pytest.fixture(scope="session")
def defended_model() -> MLPWeights:
    """The model the free and pro tiers are served by (trained once per process with its teacher, a few seconds)."""
    return simulation.demo_model()


@pytest.fixture(scope="session")
def profile(defended_model: MLPWeights) -> InputProfile:
    """The demo model's reference profile, with the free tier's served confidences on the held-out rows."""
    return simulation.reference_profile(defended_model, tier="free")
