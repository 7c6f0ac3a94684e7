"""Every log line, structlog's or a library's, loses card numbers, CVCs and keys."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import ROOT

SCRIPT = """
import logging
import structlog
from config.logging import configure_logging
from config.settings import Settings
configure_logging(Settings(_env_file=None, log_level="INFO", log_json=JSON))
log = structlog.get_logger("probe")
log.info("paid 4242 4242 4242 4242", card={"number": "4000056655665556", "cvc": "737"},
         key="sk_live_51Habcdefgh", pan_int=5555555555554444,
         idem="cv-8030b5ce-1234-4a5b-9c8d-4111111111111111-charge")
logging.getLogger("library").warning("Authorization: Bearer abc.def cvv: 123")
try:
    raise ValueError("bad card 378282246310005")
except ValueError:
    log.exception("failed")
"""


def run(json_lines: bool) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("JSON", str(json_lines))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_log_lines_never_carry_pans_cvcs_or_keys_in_any_renderer() -> None:
    for json_lines in (True, False):
        # Given a process logging card data, keys and a traceback quoting a PAN
        # When the lines are rendered (JSON and console)
        out = run(json_lines)
        # Then none of it survives, and the idempotency key is whole
        for secret in (
            "4242 4242 4242 4242", "4000056655665556", '"737"', "'737'", "sk_live_51Habcdefgh",
            "5555555555554444", "abc.def", "cvv: 123", "378282246310005",
        ):  # fmt: skip
            assert secret not in out, (secret, out)
        assert "cv-8030b5ce-1234-4a5b-9c8d-4111111111111111-charge" in out
        assert "[PAN ****4242]" in out and "[PAN ****0005]" in out
