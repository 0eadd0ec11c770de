"""The README's command blocks, as the docs test runs them.

A fenced ``console`` block holds commands (lines starting with ``$ ``), each optionally followed
by lines it must print; a fenced ``bash``/``sh`` block holds one command per line. An HTML comment
``<!-- docs-test: ... -->`` just above a block says how the test treats it:

- ``skip: REASON`` — not run (only the set-up lines; the test counts them);
- ``needs MODULE`` — skipped, with that reason, when this Python cannot import MODULE;
- ``needs slurm`` — skipped unless HPCSCALE_REAL_SLURM=1 (.ci/run: Slurm and Charliecloud);
- ``A => B; C => D`` — run with the smaller input B in place of A (A must occur in the block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(.*?)\s*-->\s*$")


@dataclass
class Command:
    line: str  # as written in the README
    expect: list[str] = field(default_factory=list)  # lines it must print

    @property
    def expect_error(self) -> bool:
        return bool(self.expect) and self.expect[0].startswith("error:")


@dataclass
class Block:
    lineno: int  # of the opening fence, 1-based
    lang: str
    commands: list[Command]
    skip: str | None = None
    needs: str | None = None
    swaps: list[tuple[str, str]] = field(default_factory=list)

    def runnable(self) -> list[Command]:
        """The commands with the block's small-input swaps applied."""
        out = []
        for c in self.commands:
            line = c.line
            for old, new in self.swaps:
                line = line.replace(old, new)
            out.append(Command(line, c.expect))
        return out


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    directive: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := DIRECTIVE.match(line):
            directive = m.group(1)
        elif (m := FENCE.match(line)) and m.group(1):
            lang, start = m.group(1), i + 1
            body = []
            i += 1
            while i < len(lines) and not FENCE.match(lines[i]):
                body.append(lines[i])
                i += 1
            if lang in ("console", "bash", "sh"):
                blocks.append(_block(start, lang, body, directive))
            directive = None
        elif line.strip():
            directive = None  # a directive applies to the block right below it only
        i += 1
    return blocks


def _block(lineno: int, lang: str, body: list[str], directive: str | None) -> Block:
    commands: list[Command] = []
    for line in body:
        if lang != "console":
            if line.strip():
                commands.append(Command(line))
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
        elif line.strip() and commands:
            commands[-1].expect.append(line.strip())
    block = Block(lineno, lang, commands)
    if directive is None:
        return block
    if directive.startswith("skip:"):
        block.skip = directive.removeprefix("skip:").strip()
    elif directive.startswith("needs "):
        block.needs = directive.removeprefix("needs ").strip()
    else:
        for part in directive.split(";"):
            old, sep, new = part.partition("=>")
            if not sep:
                raise ValueError(f"README line {lineno}: bad docs-test directive {directive!r}")
            block.swaps.append((old.strip(), new.strip()))
    return block


def readme_blocks(readme: Path) -> list[Block]:
    return parse(readme.read_text())
