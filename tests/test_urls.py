"""URLs as users write them: a password is found however the URL spells it (SQLAlchemy reads a
database URL's password past `/`, `?` and `#`, and from ?password=), refused in the config and
hidden in logs; a scheme is a scheme in capitals too."""

from __future__ import annotations

import pytest
from tests.stages.test_config import closed_port

from reprovision.config import compose, validate
from reprovision.errors import BadInput, ConfigError
from reprovision.tracking.store import check_reachable
from reprovision.urls import has_password, masked

SECRET = "s3cr"
WITH_PASSWORD = [
    f"postgresql://alice@db/mlflow?password={SECRET}t",
    f"postgresql://alice:{SECRET}/t@db/mlflow",
    f"postgresql+psycopg://alice:{SECRET}?t@db/mlflow",
    f"mysql+pymysql://alice:{SECRET}#t@db/optuna",
    f"https://alice:{SECRET}t@mirror.example/data/",
]


@pytest.mark.parametrize("url", WITH_PASSWORD)
def test_a_password_however_spelled_is_found_refused_and_hidden(root, url):
    assert has_password(url) and SECRET not in masked(url)
    for key in ("tracking.uri", "search.storage"):
        extra = ["search.sampler=tpe"] if key == "search.storage" else []
        with pytest.raises(ConfigError, match=f"{key} holds a password") as err:
            validate(compose(root / "conf", [f"{key}='{url}'", *extra]))  # quoted, as Hydra needs ? and #
        assert SECRET not in str(err.value)


@pytest.mark.parametrize("url", ["postgresql+psycopg://mlflow@/mlflow?host=/tmp/pg&port=5432", "sqlite:///x.db",
                                 "https://mirror.example/a@b", "/data/mirror"])  # fmt: skip
def test_urls_without_a_password_pass(url):
    assert not has_password(url)


def test_a_server_named_in_capitals_is_checked_like_any_other():
    port = closed_port()
    with pytest.raises(BadInput, match="unreachable"):
        check_reachable(f"HTTP://127.0.0.1:{port}")
