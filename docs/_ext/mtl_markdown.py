"""A small Markdown -> reStructuredText converter for result files written by other tools.

It covers what those files use: ATX headings, paragraphs, ``-``/``*``/``1.`` lists, pipe
tables, fenced code, inline code, bold/italic, links. Everything else is kept as escaped
text, so no input can produce an RST warning.
"""

from __future__ import annotations

import re

_INLINE = re.compile(r"(`+)(.+?)\1|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)|(?<!\w)_(.+?)_(?!\w)"
                     r"|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def escape(text: str) -> str:
    """Escape RST inline markup characters in plain text."""
    return _SPECIAL.sub(r"\\\1", text)


def inline(text: str) -> str:
    """Convert Markdown inline markup to RST, escaping everything else."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        before = text[pos:m.start()]
        out.append(escape(before))
        code, bold, link_text, url, em1, em2 = m.group(2, 3, 4, 5, 6, 7)
        if code is not None:
            code = code.strip()
            if "`" in code or code.endswith("\\") or not code:
                piece = escape(code)
            else:
                piece = f"``{code}``"
        elif bold is not None:
            piece = f"**{escape(bold)}**"
        elif link_text is not None:
            piece = f"`{escape(link_text)} <{url}>`__"
        else:
            piece = f"*{escape(em1 if em1 is not None else em2)}*"
        # RST inline markup must not touch a word character: "\ " separates invisibly.
        previous = before[-1:] or (text[m.start() - 1:m.start()] if m.start() else "")
        following = text[m.end():m.end() + 1]
        if previous and not previous.isspace():
            piece = "\\ " + piece
        if following and not following.isspace():
            piece += "\\ "
        out.append(piece)
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def _table(rows: list[list[str]]) -> list[str]:
    width = max(len(r) for r in rows)
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        row = row + [""] * (width - len(row))
        for j, cell in enumerate(row):
            lines.append(("   * - " if j == 0 else "     - ") + (inline(cell) or "\\ "))
    return lines + [""]


def _list(items: list[list]) -> list[str]:
    """RST for a (possibly nested) list; a blank line wherever the level or kind changes."""
    out, stack, previous = [], [], None  # stack: [(markdown indent, rst indent, bullet)]
    for indent, bullet, text in items:
        while stack and indent < stack[-1][0]:
            stack.pop()
        if stack and indent > stack[-1][0]:
            rst_indent = stack[-1][1] + len(stack[-1][2]) + 1
            stack.append((indent, rst_indent, bullet))
        elif stack:
            stack[-1] = (stack[-1][0], stack[-1][1], bullet)
        else:
            stack.append((indent, 0, bullet))
        key = (len(stack), bullet)
        if previous is not None and key != previous:
            out.append("")
        previous = key
        out.append(" " * stack[-1][1] + f"{bullet} {text}")
    return out + [""]


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def to_rst(markdown: str, top_level: str = "-", sub_levels: str = "~^\"") -> str:
    """Convert ``markdown`` to RST. ``#``/``##`` headings become sections with the given
    adornment characters (a level-1 ``#`` heading is dropped: the page has its own title)."""
    lines = markdown.splitlines()
    out: list[str] = []
    i = 0
    levels = top_level + sub_levels
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("```"):
            lang = stripped[3:].strip() or "text"
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
            lang = re.sub(r"[^\w+-]", "", lang) or "text"
            out += [f".. code-block:: {lang}", ""]
            out += ["   " + b for b in body] + [""]
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*$", stripped)
        if heading:
            depth = len(heading.group(1))
            if depth > 1:
                title = inline(heading.group(2))
                char = levels[min(depth - 2, len(levels) - 1)]
                out += [title, char * max(len(title), 4), ""]
            i += 1
            continue
        if stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = _split_row(lines[i])
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            out += _table(rows)
            continue
        if re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", line):
            items: list[list] = []  # [indent, bullet, text]
            while i < len(lines):
                m = re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", lines[i])
                if m:
                    bullet = "#." if m.group(2)[0].isdigit() else "-"
                    items.append([len(m.group(1).expandtabs()), bullet, inline(m.group(3))])
                elif lines[i].strip() and lines[i].startswith(" "):
                    items[-1][2] += " " + inline(lines[i].strip())
                else:
                    break
                i += 1
            out += _list(items)
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not re.match(
                r"^\s*(#{1,6}\s|```|\||([-*+]|\d+[.)])\s)", lines[i]):
            para.append(lines[i].strip())
            i += 1
        out += [inline(" ".join(para)), ""]
    return "\n".join(out)
