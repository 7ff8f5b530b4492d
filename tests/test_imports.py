import gc

import pytest

from interp.imports import loading


@pytest.fixture(autouse=True)
def _collector_as_it_was():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_waits_while_loading_then_skips_what_was_loaded():
    gc.enable()
    gc.unfreeze()
    with loading():
        assert not gc.isenabled()
        loaded = [[i] for i in range(1000)]  # objects the collector tracks
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)


def test_nested_or_with_the_collector_off_it_changes_nothing():
    gc.enable()
    gc.unfreeze()
    with loading():
        with loading():
            pass
        assert not gc.isenabled()  # the inner one did not resume it
    assert gc.isenabled()
    gc.unfreeze()
    gc.disable()
    with loading():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_a_failed_import_resumes_the_collector():
    gc.enable()
    with pytest.raises(ModuleNotFoundError), loading():
        import interp_no_such_module  # noqa: F401
    assert gc.isenabled()
