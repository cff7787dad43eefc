"""`Moat`: the API's calls as methods, batches split to the plan's maximum, 429 and 503 retried after the server's
Retry-After within a bounded budget, and every error answer raised as the exception named after its code."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from moat_client.errors import ERRORS_BY_CODE, ConnectionFailedError, MoatError
from moat_client.types import Model, Prediction, Usage

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_RETRIED_STATUSES = frozenset({429, 503})


class Moat:
    """A client of one Moat deployment with one API key.

    - `api_key`: the key (default: the `MOAT_API_KEY` environment variable). Sent as `Authorization: Bearer`, never
      in a URL.
    - `base_url`: the deployment (default: `MOAT_BASE_URL`, else http://127.0.0.1:8000).
    - `max_retries` / `max_retry_wait`: a 429 or 503 is retried after the server's `Retry-After`, at most
      `max_retries` times and for at most `max_retry_wait` seconds of waiting in all; an answer that asks for a longer
      wait than the budget has left (a daily quota's hours) is raised at once, its `retry_after` set. Other errors
      are never retried: a 400 stays a 400, and a request that may have been answered is never sent twice.
    - `max_batch_size`: inputs per request (default: the plan's, read once from /v1/usage).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        max_batch_size: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("MOAT_API_KEY", "")
        if not api_key:
            raise ValueError("Moat needs an API key: pass api_key=... or set MOAT_API_KEY.")
        if max_retries < 0 or max_retry_wait < 0:
            raise ValueError("max_retries and max_retry_wait must not be negative")
        self.base_url = (base_url or os.environ.get("MOAT_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._max_batch_size = max_batch_size
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {api_key}", "User-Agent": "moat-client-python/0.1"})

    def __enter__(self) -> Moat:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --- the API ------------------------------------------------------------------------------------------------

    def models(self) -> list[Model]:
        """The models the key's plan is served."""
        return [Model.from_json(model) for model in self.request("GET", "/v1/models")["models"]]

    def usage(self) -> Usage:
        """This billing period's usage and the plan's limits."""
        return Usage.from_json(self.request("GET", "/v1/usage"))

    def predict(self, model: str, inputs: Iterable[Sequence[float]]) -> list[Prediction]:
        """One prediction per input, in order. `inputs` may be any number of rows (lists of numbers, or a 2-D
        array with `.tolist()`): they are sent in batches of the plan's maximum. If a batch fails, the error raised
        carries the predictions of the batches before it in `partial_predictions`."""
        rows = inputs.tolist() if hasattr(inputs, "tolist") else [list(row) for row in inputs]
        if not rows:
            raise ValueError("predict needs at least one input")
        size = self.max_batch_size
        path = f"/v1/models/{quote(model, safe='')}/predict"
        predictions: list[Prediction] = []
        for start in range(0, len(rows), size):
            try:
                answer = self.request("POST", path, json={"inputs": rows[start : start + size]})
            except MoatError as error:
                error.partial_predictions = predictions
                raise
            predictions += [Prediction.from_json(item) for item in answer["predictions"]]
        return predictions

    def predict_image(self, model: str, image: str | os.PathLike[str] | bytes) -> Prediction:
        """The prediction for one picture (PNG or JPEG): a path to it, or its bytes. The server scales it to the
        model's input."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        body = {"image": base64.b64encode(data).decode("ascii")}
        answer = self.request("POST", f"/v1/models/{quote(model, safe='')}/predict", json=body)
        return Prediction.from_json(answer["predictions"][0])

    @property
    def max_batch_size(self) -> int:
        if self._max_batch_size is None:
            self._max_batch_size = self.usage().max_batch_size
        return self._max_batch_size

    # --- transport ----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        """One API call with the retry policy above: the answer's JSON, or the error's exception."""
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            try:
                response = self._session.request(
                    method, self.base_url + path, json=json, data=data, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise ConnectionFailedError(f"Could not reach {self.base_url}: {exc}") from exc
            if response.status_code < 400:
                return response.json()
            error = _error_of(response)
            # urllib3's Retry would sleep for whatever Retry-After says (a daily quota's hours): the budget is ours.
            wait = error.retry_after if error.retry_after is not None else 1.0
            retryable = response.status_code in _RETRIED_STATUSES and attempt < self.max_retries
            if not retryable or waited + wait > self.max_retry_wait:
                raise error
            time.sleep(wait)
            waited += wait
        raise AssertionError("unreachable: the last attempt returns or raises")


def _error_of(response: requests.Response) -> MoatError:
    try:
        body = response.json()
        error = body["error"]
        # /v1's {"error": {"code", "message"}}, or the Open Inference Protocol's {"error": "...", "code": ...}.
        code, message = (error["code"], error["message"]) if isinstance(error, dict) else (body["code"], error)
    except (ValueError, KeyError, TypeError):
        code, message = "error", f"HTTP {response.status_code} without an error body"
    try:
        retry_after = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        retry_after = None
    error_class = ERRORS_BY_CODE.get(code, MoatError)
    return error_class(
        message,
        status=response.status_code,
        code=code,
        request_id=response.headers.get("X-Request-Id"),
        retry_after=retry_after,
    )
