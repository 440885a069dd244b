"""The MTA-STS policy route: served for mta-sts.<hosted domain> only, the same text the record plan hashes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coldrelay.config import load_settings
from coldrelay.db import create_domain, create_engine, get_domain, session_factory, upgrade_database
from coldrelay.dns.mtasts import parse_policy, parse_sts_record
from coldrelay.provision.records import mta_sts_policy_id, plan_for
from coldrelay.web.mta_sts import POLICY_PATH, mta_sts_router

DOMAIN = "alpha.provision.test"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path}/coldrelay.db"
    upgrade_database(url)
    engine = create_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        create_domain(session, DOMAIN, ips=["192.0.2.10"])
    app = FastAPI()
    app.include_router(mta_sts_router(factory))
    app.state.factory = factory
    yield TestClient(app)
    engine.dispose()


def test_policy_is_served_for_the_hosted_domain(client: TestClient, tmp_path: Path) -> None:
    reply = client.get(POLICY_PATH, headers={"Host": f"MTA-STS.{DOMAIN}:443"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    policy = parse_policy(reply.text)
    assert (policy.mode, policy.mx, policy.max_age) == ("testing", (f"box.{DOMAIN}",), 86400)
    # The id published in _mta-sts is the hash of exactly what is served.
    with client.app.state.factory() as session:  # type: ignore[attr-defined]
        domain = get_domain(session, DOMAIN)
        assert domain is not None
        plan = plan_for(domain, load_settings(tmp_path))
    [sts] = plan.find("TXT", f"_mta-sts.{DOMAIN}")
    assert parse_sts_record(sts.value).policy_id == mta_sts_policy_id(reply.text)
    assert reply.text == plan.mta_sts_policy


@pytest.mark.parametrize("host", [DOMAIN, "mta-sts.beta.provision.test", "mta-sts.", "[::1]:8080", "mta-sts.not_a_domain!"])
def test_other_hosts_get_404(client: TestClient, host: str) -> None:
    assert client.get(POLICY_PATH, headers={"Host": host}).status_code == 404
