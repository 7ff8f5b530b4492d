import pytest

from interp.config import RunConfig


@pytest.fixture
def tiny_cfg() -> RunConfig:
    """p 11, width 12, 30 steps: trains in well under a second."""
    return RunConfig().replace(data={"p": 11, "corrupt": 0.3},
                               model={"width": 12},
                               train={"steps": 30, "save_every": 5})
