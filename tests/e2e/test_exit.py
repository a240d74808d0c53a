"""A command ends with its own exit code and everything it printed, once every exit
handler has run, without the interpreter's teardown (cli.exit_without_teardown)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    from pathlib import Path
    from logistic_regression import cli

    marker = Path(sys.argv[1])

    class FreedAtTeardown:
        def __del__(self):
            marker.with_suffix(".freed").write_text("teardown ran")

    kept = FreedAtTeardown()  # a module global: only the interpreter's teardown frees it

    def main():
        atexit.register(lambda: marker.write_text("a later exit handler ran"))
        print("said without a newline", end="")
        print("and on stderr", end="", file=sys.stderr)
        if sys.argv[2] == "raise":
            raise SystemExit(4)
        return int(sys.argv[2])

    sys.exit(cli.exit_without_teardown(main))
    """
)


def run_script(tmp_path, outcome: str) -> subprocess.CompletedProcess:
    script = tmp_path / "command.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "marker"), outcome],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("code", [0, 1, 2, 130])
def test_the_exit_code_output_and_exit_handlers_are_kept_and_the_teardown_skipped(tmp_path, code):
    done = run_script(tmp_path, str(code))
    assert done.returncode == code, done.stderr
    assert done.stdout == "said without a newline"
    assert done.stderr == "and on stderr"
    assert (tmp_path / "marker").read_text() == "a later exit handler ran"
    assert not (tmp_path / "marker.freed").exists()  # no teardown


def test_a_main_that_raises_ends_the_usual_way(tmp_path):
    done = run_script(tmp_path, "raise")
    assert done.returncode == 4
    assert done.stdout == "said without a newline"
    assert (tmp_path / "marker").read_text() == "a later exit handler ran"
    assert (tmp_path / "marker.freed").read_text() == "teardown ran"
