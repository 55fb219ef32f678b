"""What the deployment checks share: every overlay rendered once (tests/support/manifests.py)."""

import pytest

from tests.support.manifests import OVERLAYS, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """overlay -> the file holding its rendered manifests."""
    directory = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        path = directory / f"{overlay}.yaml"
        path.write_text(render(overlay))
        files[overlay] = path
    return files
