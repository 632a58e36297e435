"""GNU tar's exclude rules (as `archive.tar_command` passes them) applied in Python:
by the user-space engine's walk, and by the read-ahead so it skips what tar skips."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from vm2c_tui.plan.presets import ALWAYS_EMPTY, Rule


def anchored_patterns(rules: list[Rule]) -> list[str]:
    """The anchored excludes, in the order tar is given them: ALWAYS_EMPTY's contents, then RULES."""
    return [f"./{d}/*" for d in ALWAYS_EMPTY] + [r.pattern for r in rules]


@dataclass
class Filters:
    anchored: list[str] = field(default_factory=list)
    unanchored: list[str] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)  # guest files named .wh.*, skipped and reported

    @classmethod
    def build(cls, rules: list[Rule], user: list[str]) -> Filters:
        return cls(anchored_patterns(rules), list(user))

    def __post_init__(self) -> None:  # one regex each: fnmatch per pattern per file was 15 % of the time
        self._anchored = _union(self.anchored)
        self._unanchored = _union(self.unanchored)
        self._dirs: dict[bytes, bool] = {}  # directory -> excluded (itself or an ancestor)

    def skips(self, rel: bytes) -> bool:
        """Whether tar leaves out REL (relative to the tree, as find's %P), counting the
        directories above it: an excluded directory takes its contents with it."""
        return self._dir_excluded(rel.rpartition(b"/")[0]) or self.excluded(b"./" + rel)

    def _dir_excluded(self, rel: bytes) -> bool:
        """Iterative (a crafted tree can be deeper than Python's recursion limit)."""
        todo = []
        while rel and rel not in self._dirs:
            todo.append(rel)
            rel = rel.rpartition(b"/")[0]
        hit = self._dirs.get(rel, False)
        if len(self._dirs) > 100_000:  # a pre-order walk does not ask about old entries again
            self._dirs.clear()
        for d in reversed(todo):
            hit = hit or self.excluded(b"./" + d)
            self._dirs[d] = hit
        return hit

    def excluded(self, path: bytes) -> bool:
        p = path.decode("utf-8", "surrogateescape")
        if self._anchored and self._anchored.match(p):
            return True
        base = p.rpartition("/")[2]
        if base.startswith(".wh."):
            self.whiteouts.append(p[1:])
            return True
        if self._unanchored:
            parts = p.split("/")
            return any(self._unanchored.match("/".join(parts[i:])) for i in range(len(parts)))
        return False


def _union(patterns: list[str]):
    """GNU tar wildcards as one regex; `*` crosses `/` as tar's does when excluding."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.S) if patterns else None
