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


@pytest.fixture(scope="session")
def cancer_model() -> simulation.SimulatedModel:
    """The tabular demo as the public tiers serve it (its distilled defended variant), built once per session."""
    return simulation.breast_cancer_model()


@pytest.fixture(scope="session")
def cancer_profile(cancer_model: simulation.SimulatedModel) -> InputProfile:
    """The tabular demo's reference profile, fitted like every model's: standardised features, its held-out rows
    answered by the free tier."""
    return simulation.reference_profile(cancer_model, tier="free")
