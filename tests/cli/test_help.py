"""`lllt --help` and every command's --help: one placeholder style, one wording per
option, an examples section and the exit codes; shell completion is on."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

LLLT = [sys.executable, "-m", "lllt"]


def _help(*command: str) -> str:
    out = subprocess.run(
        [*LLLT, *command, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _commands(group: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    text = _help(*group)
    if "Commands:" not in text:
        return [group]
    found = [group]
    block = text.split("Commands:", 1)[1]
    for line in block.splitlines():
        m = re.match(r"  (\w[\w-]*)\s{2,}", line)
        if m:
            found.extend(_commands((*group, m.group(1))))
    return found


COMMANDS = _commands()


def test_every_command_is_found() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"run", "history", "protocol check", "protocol new", "sim serve"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "lllt")
def test_one_placeholder_style_examples_and_exit_codes(command: tuple[str, ...]) -> None:
    text = _help(*command)
    assert not re.search(r"<[a-z][^>]*>", text), text  # no <str>, <path>, <list[str]>
    assert not re.search(r"\{[A-Za-z]+\}", text), text  # no {FILE}
    for line in text.splitlines():
        # "-d, --device URL": the placeholder after an option is an upper-case word
        m = re.match(r"\s+(?:-\w, )?--[\w-]+ (\S+)\s{2,}", line)
        if m:
            assert re.fullmatch(r"[A-Z][A-Z0-9:._-]*(\.\.\.)?", m.group(1)), line
    usage = text.splitlines()[0]
    for word in usage.split()[2 + len(command) :]:
        assert word in ("[OPTIONS]", "COMMAND", "[ARGS]...") or word.strip("[].").isupper(), usage
    if "Commands:" not in text or not command:
        assert "Examples:" in text, text
    assert "Exit codes:" in text or "Commands:" in text, text


def test_one_wording_per_option() -> None:
    seen: dict[str, set[str]] = {}
    for command in COMMANDS:
        text = _help(*command)
        for m in re.finditer(
            r"^\s+(?:-\w, )?(--[\w-]+)(?: [A-Z][A-Z0-9:._-]*)?\s{2,}(.+(?:\n\s{8,}\S.*)*)",
            text,
            re.M,
        ):
            words = " ".join(m.group(2).split())
            words = re.sub(r"\s*\[(default|required)[^\]]*\]", "", words)
            seen.setdefault(m.group(1), set()).add(words)
    for option in ("--db", "--device", "--json", "--limits", "--profile", "--research"):
        assert len(seen.get(option, set())) == 1, (option, seen.get(option))


def test_shell_completion_is_on() -> None:
    text = _help()
    assert "--install-completion" in text
    out = subprocess.run(
        [*LLLT[:1], "-m", "lllt"],
        env={"_LLLT_COMPLETE": "complete_bash", "COMP_WORDS": "lllt prot", "COMP_CWORD": "1",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "protocol" in out.stdout, out.stdout + out.stderr
