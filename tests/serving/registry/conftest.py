import pytest


@pytest.fixture(autouse=True)
def _isolated_artifact_dir(model_artifact_dir):
    """Every registry test writes artifacts into its own empty directory."""
    return model_artifact_dir
