"""The findings of a check: errors and warnings, each a sentence prefixed with its source.

Every finding says what is wrong, where (attribute path and tag) and, where it helps, what to do;
its prefix names who found it: ``[dicomregsave]`` (this package's own rules), ``[dciodvfy]`` or
``[dcentvfy]`` (David Clunie's validators).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE = "[dicomregsave]"
DCIODVFY = "[dciodvfy]"
DCENTVFY = "[dcentvfy]"


@dataclass
class ConformanceReport:
    """Findings of one or more checks; each entry starts with its source, e.g. ``[dciodvfy]``."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def error(self, message: str, source: str = SOURCE) -> None:
        self.errors.append(f"{source} {message}")

    def warning(self, message: str, source: str = SOURCE) -> None:
        self.warnings.append(f"{source} {message}")

    def extend(self, other: ConformanceReport) -> None:
        """Append the findings of `other`."""
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)

    def text(self) -> str:
        """One line per finding, errors first: ``Error: [source] ...`` / ``Warning: [source] ...``."""
        return "\n".join([f"Error: {e}" for e in self.errors] + [f"Warning: {w}" for w in self.warnings])
