"""The web server's logger: the access line's atoms computed lean, with the values gunicorn would give them."""

import datetime
import os

import gunicorn.glogging
import pytest
from gunicorn.config import Config

from config import gunicorn_conf


class _Response:
    status = "200 OK"
    sent = 91
    headers = [("Content-Type", "application/json"), ("X-Request-Id", "abc")]


class _Request:
    headers = [("HOST", "127.0.0.1"), ("AUTHORIZATION", "Bearer moat_live_x")]


ENVIRON = {
    "REMOTE_ADDR": "203.0.113.9",
    "REQUEST_METHOD": "POST",
    "RAW_URI": "/v1/models/digits/predict?x=1",
    "PATH_INFO": "/v1/models/digits/predict",
    "QUERY_STRING": "x=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
}
ELAPSED = datetime.timedelta(seconds=1, microseconds=234_567)


def _logger(access_log_format: str) -> gunicorn_conf._RedactingLogger:
    config = Config()
    config.set("accesslog", os.devnull)
    config.set("access_log_format", access_log_format)
    return gunicorn_conf._RedactingLogger(config)


def test_the_platform_format_gets_gunicorns_values_for_the_atoms_it_reads():
    logger = _logger(gunicorn_conf.access_log_format)
    full = gunicorn.glogging.Logger.atoms(logger, _Response(), _Request(), ENVIRON, ELAPSED)

    lean = logger.atoms(_Response(), _Request(), ENVIRON, ELAPSED)

    assert set(lean) == gunicorn_conf._LEAN_ATOMS
    assert lean == {name: full[name] for name in lean}
    line = gunicorn_conf.access_log_format % gunicorn.glogging.SafeAtoms(lean)
    assert line == f'203.0.113.9 "POST /v1/models/digits/predict" 200 91 1234ms <{os.getpid()}>'


@pytest.mark.parametrize("sent, shown", [(None, "-"), (0, "0")])
def test_the_bytes_sent_read_as_gunicorn_writes_them(sent, shown):
    response = _Response()
    response.sent = sent

    assert _logger(gunicorn_conf.access_log_format).atoms(response, _Request(), ENVIRON, ELAPSED)["b"] == shown


def test_a_format_reading_other_atoms_gets_every_atom():
    logger = _logger('%(h)s "%(r)s" %(s)s %({user-agent}i)s')

    atoms = logger.atoms(_Response(), _Request(), ENVIRON, ELAPSED)

    assert atoms["r"] == "POST /v1/models/digits/predict?x=1 HTTP/1.1" and "{host}i" in atoms
