"""The documentation's commands run as written and its links lead somewhere.

For README.md and every docs/*.md: each command that runs a script of this repository
(``python X.py ...``, ``python -m pkg.mod ...``, ``bash scripts/x.sh ...``), in a shell code block
or an inline code span, names a file or module that exists, and every ``--flag`` it passes is an
option of that script's argparse parser (with a value among the option's choices where it has
them). Bash scripts accept the flags of their ``case`` patterns, or those of the Python script
they forward ``"$@"`` to. Every relative link or image points to an existing file, and every
``#anchor`` to a heading of its page. The parsers are imported, not run: no subprocess.
"""

from __future__ import annotations

import argparse
import importlib
import re
import runpy
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SHELL_LANGUAGES = ("", "bash", "sh", "shell", "console")
"""Fenced code blocks in these languages hold commands; others (python, bibtex...) are skipped."""

PLACEHOLDERS = ("...", "…", "<", "$", "*")
"""A value containing one of these stands for something (``<file>``, ``$VAR``) and is not checked
against an option's choices."""

SEPARATORS = {"|", "||", "&&", ";", "&"}
"""Shell tokens that end one command and start the next."""

LAUNCHERS = {"torch.distributed.run": "the script after the launcher's own options"}
"""Third-party modules whose arguments name a script of ours, checked in its place."""

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
PYTHON = re.compile(r"^(?:\S*/)?python3?(?:\.\d+)?$")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*")


@dataclass
class Command:
    """One invocation found in a page: the program (``python``/``bash``) and its arguments."""

    page: str
    text: str
    program: str
    args: list[str]


def command_lines(markdown: str) -> list[str]:
    """Shell commands of a page: the logical lines of its shell code blocks (``\\`` continuations
    joined, comment lines dropped) and the inline code spans that start with python or bash."""
    lines = []
    for language, body in FENCE.findall(markdown):
        if language.lower() not in SHELL_LANGUAGES:
            continue
        for line in re.sub(r"\\\n", " ", body).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    prose = FENCE.sub("", markdown)
    for span in INLINE.findall(prose):
        if "\n\n" in span:  # a stray backtick, not a span: spans end with their paragraph
            continue
        words = span.split()
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # FUZZ_EXAMPLES=2000 bash ...
            words.pop(0)
        span = " ".join(words)
        if words and (PYTHON.match(words[0]) or words[0] == "bash"):
            lines.append(span.strip())
    return lines


def split_commands(page: str, line: str) -> list[Command]:
    """The python and bash invocations of one shell line (after ``VAR=x``, ``docker run ...``,
    ``&&`` or ``|``); redirections are dropped."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in a prose span
        return []
    commands, current = [], []
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            for i, word in enumerate(current):
                if PYTHON.match(word) or word == "bash":
                    args = [a for a in current[i + 1 :] if not re.match(r"^\d?>", a)]
                    program = "bash" if word == "bash" else "python"
                    commands.append(Command(page, line, program, args))
                    break
            current = []
        else:
            current.append(token)
    return commands


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parser captured")
        self.parser = parser


def _capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
    raise _Captured(self)


def script_parser(module_name: str) -> argparse.ArgumentParser:
    """The argparse parser of a script of ours: its ``get_parser()``, else the parser its
    ``parse_args(argv)`` or its ``__main__`` block builds (caught at ``parse_args``, so nothing
    runs)."""
    module = importlib.import_module(module_name)
    if hasattr(module, "get_parser"):
        return module.get_parser()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", _capture)
        patch.setattr(argparse.ArgumentParser, "parse_known_args", _capture)
        try:
            if hasattr(module, "parse_args"):
                module.parse_args([])
            else:
                with warnings.catch_warnings():  # "found in sys.modules": imported above
                    warnings.simplefilter("ignore", RuntimeWarning)
                    runpy.run_module(module_name, run_name="__main__")
        except _Captured as captured:
            return captured.parser
    raise AssertionError(f"{module_name} builds no argparse parser")


def check_flags(parser: argparse.ArgumentParser, args: list[str], where: str) -> list[str]:
    """Problems with ``args`` for ``parser``: unknown options, values outside an option's
    choices."""
    options = {s: a for a in parser._actions for s in a.option_strings}
    problems = []
    for i, token in enumerate(args):
        if token in ("...", "…") or not FLAG.match(token):
            continue
        flag, _, inline_value = token.partition("=")
        action = options.get(flag)
        if action is None:
            problems.append(f"{where}: unknown option {flag}")
            continue
        if action.choices is None or action.nargs == 0:
            continue
        values = [inline_value] if inline_value else []
        for value in args[i + 1 :] if not inline_value else []:
            if FLAG.match(value) or value in ("...", "…"):
                break
            values.append(value)
            if action.nargs in (None, "?"):
                break
        allowed = {str(c) for c in action.choices}
        for value in values:
            if any(p in value for p in PLACEHOLDERS):
                continue
            for choice in value.split("|"):
                if choice not in allowed:
                    problems.append(f"{where}: {flag} {choice} is not one of {sorted(allowed)}")
    return problems


def check_python(command: Command) -> list[str]:
    """Problems of one ``python ...`` invocation: a missing script or module, bad options."""
    args = list(command.args)
    while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
        args.pop(0)  # the interpreter's own options (-u, -X ...)
    if not args or args[0] == "-c":
        return []
    where = f"{command.page}: `{command.text}`"
    if args[0] == "-m":
        if len(args) < 2:
            return [f"{where}: -m without a module"]
        module, rest = args[1], args[2:]
        if module in LAUNCHERS:
            scripts = [i for i, a in enumerate(rest) if a.endswith(".py")]
            if not scripts:
                return [f"{where}: {module} without a script"]
            return check_python(Command(command.page, command.text, "python", rest[scripts[0] :]))
        package = ROOT / module.split(".")[0]
        if not package.is_dir():
            return []  # a third-party module (pytest, pip, venv)
        path = ROOT.joinpath(*module.split("."))
        if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
            return [f"{where}: no module {module} in this repository"]
    else:
        script, rest = args[0], args[1:]
        if not script.endswith(".py"):
            return [f"{where}: {script} is not a Python script"]
        if not (ROOT / script).is_file():
            return [f"{where}: no file {script}"]
        module = script[: -len(".py")].replace("/", ".")
    return check_flags(script_parser(module), rest, where)


def check_bash(command: Command) -> list[str]:
    """Problems of one ``bash X.sh ...`` invocation: a missing script, options it does not
    accept (its ``case`` patterns, or the parser of the Python script it forwards ``"$@"`` to),
    test files that do not exist (for a script that hands its arguments to pytest)."""
    if not command.args:
        return []
    where = f"{command.page}: `{command.text}`"
    script, rest = command.args[0], command.args[1:]
    path = ROOT / script
    if not path.is_file():
        return [f"{where}: no file {script}"]
    text = path.read_text()
    forward = re.search(r"python\S*\s+(?:-m\s+(\S+)|(\S+\.py))\s+\"\$@\"", text)
    if forward:
        module = forward.group(1) or forward.group(2)[: -len(".py")].replace("/", ".")
        if module == "pytest":
            missing = [a for a in rest if a.endswith(".py") and not (ROOT / a).is_file()]
            return [f"{where}: no file {a}" for a in missing]
        return check_flags(script_parser(module), rest, where)
    accepted = set(re.findall(r"^\s*(--?[\w-]+)\)", text, re.M))
    unknown = [a for a in rest if FLAG.match(a) and a not in accepted]
    return [f"{where}: {script} does not accept {a}" for a in unknown]


def check_command(command: Command) -> list[str]:
    """Problems of one invocation, python or bash."""
    return check_python(command) if command.program == "python" else check_bash(command)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, link targets, markup and punctuation dropped
    (letters, digits, ``_`` and ``-`` stay), spaces -> ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        result.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return result


def check_links(page: Path) -> list[str]:
    """Relative links and images of a page that lead to no file, or to no heading."""
    markdown = page.read_text()
    problems = []
    for target in LINK.findall(FENCE.sub("", markdown)):
        if re.match(r"^[a-z][\w+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{page.name}: link to missing {path}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{page.name}: no heading #{anchor} in {file.name}")
    return problems


def page_problems(page: Path) -> tuple[list[Command], list[str]]:
    name = str(page.relative_to(ROOT))
    commands = [c for line in command_lines(page.read_text()) for c in split_commands(name, line)]
    problems = [p for c in commands for p in check_command(c)]
    return commands, problems + check_links(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_commands_and_links(page: Path) -> None:
    commands, problems = page_problems(page)
    assert not problems, "\n".join(problems)
    if page.name == "README.md":
        texts = {" ".join([c.program, *c.args]) for c in commands}
        assert {"bash scripts/demo.sh", "bash scripts/test.sh"} <= texts, texts


def test_every_docs_page_is_reached_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(readme)}
    missing = [p.name for p in PAGES[1:] if p.name not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_checker_finds_bad_commands_and_links(tmp_path: Path) -> None:
    """The checks themselves: a typo'd flag across a line continuation, a wrong choice, a missing
    module, a bash flag the script does not take, a dead link and a dead anchor are all reported;
    a correct command is not."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```bash\n"
        "python train.py --phase 1 \\\n    --data_pth data/x   # typo\n"
        "python test_02_model.py --depth_mask order|meat\n"
        "OUT=x python -m render.no_such_module --num 3\n"
        "bash scripts/setup.sh --apps && python -m render.make_backgrounds --out x --num 2\n"
        "```\n\nRun `python evaluate.py --units m --align icp`. [a](missing.md) [b](#title)"
        " [c](#nothing)\n"
    )
    commands = [c for line in command_lines(page.read_text()) for c in split_commands("page", line)]
    assert [c.args[0] for c in commands] == [
        "train.py",
        "test_02_model.py",
        "-m",
        "scripts/setup.sh",
        "-m",
        "evaluate.py",
    ]
    found = [p for c in commands for p in check_command(c)]
    assert len(found) == 4, found
    assert "unknown option --data_pth" in found[0]
    assert "--depth_mask meat" in found[1]
    assert "no module render.no_such_module" in found[2]
    assert "does not accept --apps" in found[3]
    links = check_links(page)
    assert links == [
        "page.md: link to missing missing.md",
        "page.md: no heading #nothing in page.md",
    ]
