"""The command as a process of its own sets the garbage collector's schedule for one short command
(:mod:`cli.process`); called inside another Python program (these tests, a script) it leaves the
collector as it was."""

from __future__ import annotations

import atexit
import gc
import subprocess
import sys

from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.cli.process import FULL_COLLECTION_INTERVAL, command_process

#: Runs ``dicomregsave ARGS`` as the console script does and prints, at the interpreter's exit (after
#: the command's own exit handlers), the collector's thresholds, the number of frozen objects and of
#: objects it still tracks.
AS_THE_CONSOLE_SCRIPT = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print(*gc.get_threshold(), gc.get_freeze_count(), len(gc.get_objects())))\n"
    "from DicomRegSaveLib.cli.main import main\n"
    "sys.argv[0] = 'dicomregsave'\n"
    "sys.exit(main())\n"
)


def _as_the_console_script(*arguments: object) -> tuple[subprocess.CompletedProcess, list[int]]:
    result = subprocess.run(
        [sys.executable, "-c", AS_THE_CONSOLE_SCRIPT, *map(str, arguments)], capture_output=True, text=True, timeout=300
    )
    return result, [int(word) for word in result.stdout.splitlines()[-1].split()]


def test_an_export_as_its_own_process_exits_with_everything_frozen(case, tmp_path):
    output = tmp_path / "reg.dcm"
    result, (young, middle, full, frozen, tracked) = _as_the_console_script(
        "export", "--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir,
        "--output", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.is_file()
    assert (young, middle, full) == gc.get_threshold()  # the schedule is restored once the command is done
    # the modules and the standard's tables: hundreds of thousands of objects, none left to visit
    assert frozen > 100_000 and tracked < 1_000


def test_a_usage_error_as_its_own_process_exits_frozen_too():
    result, (*_, frozen, tracked) = _as_the_console_script("export", "--no-such-option")
    assert result.returncode == 2
    assert frozen > 0 and tracked < 1_000


def test_full_collections_are_rare_while_the_command_runs_and_the_exit_freezes(monkeypatch):
    at_exit = []
    monkeypatch.setattr(atexit, "register", at_exit.append)  # this test process keeps its own exit
    thresholds = gc.get_threshold()
    with command_process():
        assert gc.get_threshold() == (*thresholds[:2], FULL_COLLECTION_INTERVAL)
    assert gc.get_threshold() == thresholds
    assert at_exit == [gc.freeze]


def test_main_called_in_a_program_leaves_the_collector_as_it_was(tmp_path):
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert main(["to-transform", str(tmp_path / "missing.dcm"), str(tmp_path / "out.mha")]) == 1
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
