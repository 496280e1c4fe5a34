"""The command as a process of its own sets the garbage collector's schedule for one short command
(:mod:`cli.process`); called inside another Python program (these tests, a script) it leaves the
collector as it was."""

from __future__ import annotations

import gc
import subprocess
import sys

from DicomRegSaveLib.cli.main import main
from DicomRegSaveLib.cli.process import FULL_COLLECTION_INTERVAL

#: Runs ``dicomregsave ARGS`` as the console script does and prints, at the interpreter's exit, the
#: collector's thresholds, the number of frozen objects and of objects it still tracks.
AS_THE_CONSOLE_SCRIPT = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print(*gc.get_threshold(), gc.get_freeze_count(), len(gc.get_objects())))\n"
    "from DicomRegSaveLib.cli.main import main\n"
    "sys.argv[0] = 'dicomregsave'\n"
    "sys.exit(main())\n"
)


def test_an_export_as_its_own_process_ends_with_everything_frozen(case, tmp_path):
    output = tmp_path / "reg.dcm"
    arguments = ["--transform", case.field_path, "--fixed", case.fixed_dir, "--moving", case.moving_dir]
    result = subprocess.run(
        [sys.executable, "-c", AS_THE_CONSOLE_SCRIPT, "export", *map(str, arguments), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert output.is_file()
    young, middle, full, frozen, tracked = map(int, result.stdout.splitlines()[-1].split())
    assert (young, middle, full) == (*gc.get_threshold()[:2], FULL_COLLECTION_INTERVAL)
    # the modules and the standard's tables: hundreds of thousands of objects, none left to visit
    assert frozen > 100_000 and tracked < 1_000


def test_a_usage_error_as_its_own_process_ends_frozen_too():
    result = subprocess.run(
        [sys.executable, "-c", AS_THE_CONSOLE_SCRIPT, "export", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    young, middle, full, frozen, _ = map(int, result.stdout.splitlines()[-1].split())
    assert full == FULL_COLLECTION_INTERVAL and frozen > 0


def test_main_called_in_a_program_leaves_the_collector_as_it_was(tmp_path):
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert main(["to-transform", str(tmp_path / "missing.dcm"), str(tmp_path / "out.mha")]) == 1
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
