"""Domain errors of the model registry."""

from core.errors import ApplicationError


class ArtifactRejectedError(ApplicationError):
    """The artifact cannot be read, fails its checks, or does not fit the model (its input, output or answers)."""

    code = "artifact_rejected"
    status = 400


class VersionExistsError(ApplicationError):
    code = "version_exists"
    status = 409


class InvalidVersionError(ApplicationError):
    """The version's variant, name, metrics or DP figures are not acceptable."""

    code = "invalid_version"
    status = 400


class InvalidModelError(ApplicationError):
    """The model's description does not hold: its slug, class labels, input schema or data files."""

    code = "invalid_model"
    status = 400


class ModelExistsError(ApplicationError):
    code = "model_exists"
    status = 409
