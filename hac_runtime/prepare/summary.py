"""What ``hac-prepare`` reports: per clip, and for the run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClipSummary:
    """What one clip gave: frames read, frames with a face, warnings; ``skipped`` when done by an earlier run."""

    name: str
    source: str
    frames: int = 0
    faces: int = 0
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def no_face(self) -> int:
        return self.frames - self.faces


@dataclass
class PrepareSummary:
    """The run: clips prepared or skipped, inputs that failed ``(input, reason)``, totals."""

    out: Path
    clips: list[ClipSummary] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  #: about the inputs (``discovery.collect_clips``)
    seconds: float = 0.0
    workers: int = 1

    def _per_source(self) -> list[ClipSummary]:
        """One clip per source (a multi-face source's clips share its frames)."""
        return list({c.source: c for c in self.clips}.values())

    frames = property(lambda self: sum(c.frames for c in self._per_source()))
    faces = property(lambda self: sum(c.faces for c in self.clips))
    no_face = property(lambda self: sum(c.no_face for c in self.clips))  # per clip: frames without its face
    skipped = property(lambda self: sum(c.skipped for c in self.clips))

    def render(self, warnings: bool = True) -> str:
        """A few lines for people: the totals, the failed inputs, and (``warnings``) the clips' warnings."""
        done = f" ({self.skipped} already done)" if self.skipped else ""
        n, sources = len(self.clips), len(self._per_source())
        of = f" of {sources} source{'s' if sources != 1 else ''}" if sources != n else ""
        line = f"{n} clip{'s' if n != 1 else ''}{of}{done} in {self.out}: {self.frames} frames, {self.faces} faces found"
        if sources == n:
            line += f", {self.no_face} frames without a face"
        lines = [line]
        if self.failed:
            lines.append(f"{len(self.failed)} input(s) could not be used:")
            lines += [f"  {why}" for _, why in self.failed]
        notes = list(dict.fromkeys(self.warnings + [w for c in self.clips if not c.skipped for w in c.warnings])
                     ) if warnings else []
        if notes:
            lines.append("warnings:")
            lines += [f"  {w}" for w in notes]
        return "\n".join(lines)
