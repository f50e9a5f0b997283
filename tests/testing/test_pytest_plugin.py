from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest

from mlport.processes import process_start_time

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the leak check reads /proc"
)

CONFTEST = """
import pytest
from mlport.processes import spawn, stop

pytest_plugins = ["mlport.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory):
    _popen, record = spawn(
        ["sleep", "60"], name="shared", log_dir=tmp_path_factory.mktemp("logs")
    )
    yield record
    stop(record, grace=1)
"""


def _kill_if_alive(pids: list[int]) -> None:
    for pid in pids:
        if process_start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)


def test_a_leaked_detached_process_fails_the_session_names_its_test_and_is_killed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_leak=textwrap.dedent(
            """
            import subprocess
            from pathlib import Path

            import pytest
            from mlport.processes import spawn


            def test_leaks():
                # The shell exits at once: the sleep is orphaned, like a daemon.
                started = subprocess.run(
                    ["sh", "-c", "sleep 61 >/dev/null 2>&1 & echo $!"],
                    capture_output=True, text=True, check=True,
                )
                Path("leaked.pid").write_text(started.stdout)


            @pytest.fixture(scope="module")
            def forgetful_server(tmp_path_factory):
                _popen, record = spawn(
                    ["sleep", "62"], name="forgotten", log_dir=tmp_path_factory.mktemp("logs")
                )
                Path("forgotten.pid").write_text(str(record.pid))
                yield record


            @pytest.mark.allow_background_processes
            def test_uses_a_server_it_does_not_stop(forgetful_server):
                pass


            def test_after(shared_server):
                pass
            """
        )
    )
    pids: list[int] = []
    try:
        result = pytester.runpytest_subprocess()
        pids = [
            int((pytester.path / name).read_text())
            for name in ("leaked.pid", "forgotten.pid")
            if (pytester.path / name).exists()
        ]
        assert len(pids) == 2
        leaked, forgotten = pids

        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=3, errors=1)
        result.stdout.fnmatch_lines(
            [
                "*2 processes started during this test session were still running at its end*",
                f"*pid {leaked}: sleep 61  (started during test_leak.py::test_leaks)*",
                f"*pid {forgotten}: sleep 62  (started during "
                "test_leak.py::test_uses_a_server_it_does_not_stop, which allows background "
                "processes: the fixture that owns it never stopped it)*",
            ]
        )
        assert "shared" not in result.stdout.str()  # stopped by its fixture before the check
        assert process_start_time(leaked) is None
        assert process_start_time(forgotten) is None
    finally:
        _kill_if_alive(pids)


def test_a_session_that_stops_its_processes_passes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_clean=textwrap.dedent(
            """
            import os
            import subprocess

            import pytest
            from mlport.processes import spawn, stop


            @pytest.fixture(scope="module")
            def module_server(tmp_path_factory):
                _popen, record = spawn(
                    ["sleep", "60"], name="module", log_dir=tmp_path_factory.mktemp("logs")
                )
                yield record
                stop(record, grace=1)


            def test_marks_processes():
                assert len(os.environ["MLPORT_TEST_SESSION"]) == 32


            def test_one(module_server, shared_server):
                pass


            def test_two(module_server, shared_server):
                pass


            def test_spawn_and_stop(tmp_path):
                _popen, record = spawn(["sleep", "60"], name="short", log_dir=tmp_path)
                assert stop(record, grace=1)


            def test_popen_waited(tmp_path):
                child = subprocess.Popen(["sleep", "60"])
                child.terminate()
                child.wait()
            """
        )
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=5)
    assert "still running" not in result.stdout.str()


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["mlport.testing.pytest_plugin"]\n')
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.allow_background_processes*"])
