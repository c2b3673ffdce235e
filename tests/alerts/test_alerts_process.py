"""``connector produce afas --once`` with ALERT_WEBHOOK_URL: the real process sends the alert."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.alerts.conftest import EMAIL, dead_letter, polled
from tests.alerts.receiver import Receiver

from connector.sandbox.afas.app import DEFAULT_TOKEN
from connector.sandbox.afas.app import create_app as create_afas
from connector.sandbox.server import BackgroundServer
from connector.sandbox.spotler.app import DEFAULT_KEY, DEFAULT_SECRET
from connector.sandbox.spotler.app import create_app as create_spotler

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    with BackgroundServer(create_afas(contacts=20, seed=4, token=DEFAULT_TOKEN)) as afas, \
            BackgroundServer(create_spotler()) as spotler:
        yield afas.url, spotler.url


def test_a_producer_process_sends_the_dead_letter_alert(servers: tuple[str, str], redis_url: str,
                                                        redis_client: redis.Redis, tmp_path: Path) -> None:
    afas, spotler = servers
    polled(redis_client, "spotler", read=1)
    dead_letter(redis_client)
    with Receiver() as receiver:
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AFAS_", "SPOTLER_", "CONNECTOR_", "ALERT_"))}
        env = {
            **inherited, "REDIS_URL": redis_url, "CONNECTOR_DATA_DIR": str(tmp_path),
            "AFAS_BASE_URL": f"{afas}/ProfitRestServices", "AFAS_TOKEN": DEFAULT_TOKEN,
            "SPOTLER_BASE_URL": f"{spotler}/integrationservice-1.1.0", "SPOTLER_KEY": DEFAULT_KEY,
            "SPOTLER_SECRET": DEFAULT_SECRET, "LOG_LEVEL": "DEBUG", "ALERT_WEBHOOK_URL": receiver.url,
        }
        done = subprocess.run([sys.executable, "-m", "connector", "produce", "afas", "--once"], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        bodies = receiver.received()
    assert done.returncode == 0, done.stderr
    sent = [b["text"].split(" ")[2] for b in bodies]
    assert sent[0] == "dead_letters:spotler:"
    assert set(sent[1:]) <= {"rejected_share:afas:"}  # the seeded sandbox holds rows the producer rejects
    assert "s3cr3t" not in done.stderr + done.stdout
    assert EMAIL not in str(bodies)
