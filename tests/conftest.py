import os

import pytest

from interp.config import RunConfig


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """p 11, width 12, 30 steps: trains in well under a second."""
    return RunConfig().replace(data={"p": 11, "corrupt": 0.3},
                               model={"width": 12},
                               train={"steps": 30, "save_every": 5})


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """Built C++ kernels (interp.native) go to this session's temporary folder, not the
    user's cache, unless INTERP_CACHE_DIR says where: each test session builds once."""
    if "INTERP_CACHE_DIR" not in os.environ:
        os.environ["INTERP_CACHE_DIR"] = str(tmp_path_factory.mktemp("interp-cache"))
    yield
