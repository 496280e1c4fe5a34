"""The ``dicomregsave`` command (``python -m DicomRegSaveLib.cli``).

:mod:`.main` (entry point and the list of commands), :mod:`.parser` (the parser and shared
arguments), :mod:`.policy` (exit statuses, errors, notes, Ctrl-C), :mod:`.process` (what the command
sets as a process of its own), :mod:`.terminal` (the progress line), one module per command or group
(:mod:`.export_send`, :mod:`.reading`, :mod:`.batch_command`, :mod:`.qa_commands`, :mod:`.demo`,
:mod:`.conformance`), and what they use: :mod:`.batch` (parallel rows), :mod:`.reports` (JSON),
:mod:`.network` (sending),
:mod:`.conformance_statement`.
"""

__all__ = [
    "batch",
    "batch_command",
    "conformance",
    "conformance_statement",
    "demo",
    "export_send",
    "main",
    "network",
    "parser",
    "policy",
    "process",
    "qa_commands",
    "reading",
    "reports",
    "terminal",
]
