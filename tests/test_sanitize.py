"""The sanitizer of untrusted text, and a hostile repository's output attacks end to end."""

from __future__ import annotations

import base64
import textwrap
import xml.etree.ElementTree as ET

import pytest
from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST, RepoFactory
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from pytest_corrsource.report.github import message_data
from pytest_corrsource.report.sanitize import (
    code,
    escape_controls,
    fenced,
    inline,
    neutralize_commands,
    sanitize,
    sanitize_data,
)

ATTACKS = [
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: write the reader's clipboard
    "\x1b]0;pwned title\x07",  # window title
    "\x1b[2J\x1b[31m",  # clear screen, colours
    "\x9b31m",  # C1 CSI
    "ok\rforged line",  # carriage return overwrites what the log shows
    "\u202eevil\u202c \u2066x\u2069",  # bidi override / isolate (Trojan Source)
    "\x00\x08\x7f",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_control_characters_are_escaped(attack: str) -> None:
    out = escape_controls(attack)
    assert all(ch in "\n\t" or (ch.isprintable() and ch != "\x7f") for ch in out)
    assert "\\x" in out or "\\u" in out
    assert escape_controls(out) == out  # stable


def test_newline_and_tab_stay() -> None:
    assert escape_controls("a\tb\nc") == "a\tb\nc"
    assert escape_controls("\x1b[31m") == "\\x1b[31m"
    assert escape_controls("\u202e") == "\\u202e"


@pytest.mark.parametrize(
    "line",
    [
        "::add-mask::secret",
        "::stop-commands::pwned",
        "::error file=README.md,line=1::forged",
        "   \t::warning::indented",
        "\u00a0::notice::after a no-break space",
    ],
)
def test_workflow_command_lines_are_inert(line: str) -> None:
    out = sanitize(f"before\n{line}\nafter", env={})
    for row in out.splitlines():
        # The runner's TrimStart trims Unicode white space, as str.lstrip does.
        assert not row.lstrip().startswith("::")
    assert "\\x3a:" in out


def test_legacy_commands_are_inert_anywhere_in_a_line() -> None:
    out = neutralize_commands("text ##[add-matcher]/tmp/evil.json and ##[set-output name=x]y")
    assert "##[" not in out
    assert "##\\x5badd-matcher]" in out


def test_sanitize_redacts_and_is_idempotent() -> None:
    env = {"GH_PAT": "ghp_canary123456"}
    text = "token ghp_canary123456 b64 " + base64.b64encode(b"ghp_canary123456").decode()
    once = sanitize(text + "\n::add-mask::x\x1b[0m", env=env)
    assert "ghp_canary123456" not in once
    assert "Z2hwX2NhbmFyeTEyMzQ1Ng" not in once
    assert sanitize(once, env=env) == once


def test_sanitize_data_covers_keys_and_nested_values() -> None:
    data = {"a\x1b": ["::x::y", {"k": "\u202e"}], "n": 3}
    assert sanitize_data(data) == {"a\\x1b": ["\\x3a:x::y", {"k": "\\u202e"}], "n": 3}


def test_annotation_message_is_one_inert_line() -> None:
    out = message_data("found: x\n::add-mask::y\r\x1b]52;c;AA==\x07")
    assert "\n" not in out
    assert "\r" not in out
    assert "\x1b" not in out
    assert "%0A\\x3a:add-mask::y" in out


MD = MarkdownIt("commonmark").enable("table")


def _outside_code(markdown: str) -> str:
    """Everything CommonMark renders as markup (not inside code blocks or code spans)."""
    parts = []
    for token in MD.parse(markdown):
        if token.type in ("fence", "code_block"):
            continue
        if token.type in ("html_block",):
            parts.append(token.content)
        for child in token.children or []:
            if child.type != "code_inline":
                parts.append(child.content if child.type != "html_inline" else "<HTML>")
    return "\n".join(parts)


@pytest.mark.parametrize(
    "text",
    [
        "```\n# PWNED\n```",
        "````\n# PWNED",
        "~~~\n# PWNED\n~~~",
        "x\n``````````\n# PWNED\n<img src=x onerror=alert(1)>",
    ],
)
def test_a_closing_fence_inside_the_text_cannot_end_the_block(text: str) -> None:
    block = fenced(text)
    tokens = [t for t in MD.parse(f"before\n\n{block}\n\n# after\n") if t.type == "fence"]
    assert len(tokens) == 1
    assert "PWNED" in tokens[0].content
    assert "PWNED" not in _outside_code(f"before\n\n{block}\n\n# after\n")


def test_inline_text_cannot_make_markup() -> None:
    hostile = "a|b <img src=x onerror=alert(1)> [x](https://evil) ![i](y) **b** `c`\nnext"
    rendered = MD.render(f"| h |\n|---|\n| {inline(hostile)} |\n")
    assert "<img" not in rendered
    assert "<a " not in rendered
    assert "<strong>" not in rendered
    assert "<code>" not in rendered
    assert rendered.count("<td>") == 1  # the | did not split the cell
    assert MD.render(code("a ``` b <i>")).count("<code>") == 1
    assert "<i>" not in MD.render(code("a ``` b <i>"))


# ---------------------------------------------------------------------------------------------
# End to end: a run step that prints every injection it can think of.

SECRET = "canary-Secret-7f3a9c"

HOSTILE_RUN = textwrap.dedent(
    f"""
    import base64, sys
    secret = {SECRET!r}  # as if read from somewhere it should not have been
    print("::add-mask::model output")
    print("::stop-commands::pwnedtoken")
    print("::error file=README.md,line=1,title=forged::forged annotation")
    print("   ::warning::indented command")
    print("##[add-matcher]/tmp/evil.json")
    print("\\x1b]52;c;ZXZpbA==\\x07\\x1b]0;pwned title\\x07\\x1b[31mred\\rforged")
    print("```")
    print("# PWNED heading")
    print("<img src=x onerror=alert(1)>")
    print("plain", secret)
    print("b64", base64.b64encode(("Bearer " + secret).encode()).decode())
    print("hex", secret.encode().hex(), "rev", secret[::-1])
    sys.exit(1)
    """
)


@pytest.mark.e2e
def test_hostile_output_reaches_no_output_active(
    pytester: pytest.Pytester, make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES, "run.py": HOSTILE_RUN})
    for path in repo.iterdir():
        path.rename(pytester.path / path.name)
    monkeypatch.setenv("MY_SERVICE_API_TOKEN", SECRET)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result = pytester.runpytest_subprocess(
        "--corresponding-source",
        "-p",
        "no:randomly",
        "-rA",
        "--junitxml=junit.xml",
        "--corrsource-report=report.json",
    )
    out = result.stdout.str() + result.stderr.str()
    assert "forged annotation" in out  # the output is shown, inert
    # Only our own annotations are workflow commands.
    commands = [line for line in out.splitlines() if line.lstrip().startswith("::")]
    assert commands
    assert all(
        line.startswith(("::error file=corresponding-source.yaml", "::warning file=", "::notice"))
        for line in commands
    ), commands
    assert "##[" not in out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    for form in (SECRET, SECRET[::-1], SECRET.encode().hex()):
        assert form not in out
    assert base64.b64encode(b"Bearer " + SECRET.encode()).decode()[12:24] not in out

    files = {
        name: (pytester.path / name).read_text(encoding="utf-8")
        for name in ("summary.md", "junit.xml", "report.json", "report.json.md")
    }
    for name, text in files.items():
        assert "\x1b" not in text, name
        assert SECRET not in text, name
        assert "\\x1b]52" in text or name == "report.json", name  # JSON escapes the backslash
    ET.fromstring(files["junit.xml"])
    assert "PWNED" in files["summary.md"]
    assert "PWNED" not in _outside_code(files["summary.md"])
    assert "<img" not in MD.render(files["summary.md"])


# ---------------------------------------------------------------------------------------------
# Properties over arbitrary text.

_HOSTILE_ALPHABET = st.sampled_from(
    ["\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066", "\u2028", ":", "::", "##[", "`", "```",
     "\n", "\t", " ", "\u00a0", "a", "<", ">", "|", "#", "~"]
)  # fmt: skip
_HOSTILE_TEXT = st.lists(st.one_of(_HOSTILE_ALPHABET, st.text(max_size=3)), max_size=40).map(
    "".join
)


@given(_HOSTILE_TEXT)
def test_sanitized_text_has_no_controls_and_no_commands(text: str) -> None:
    out = sanitize(text, env={})
    assert sanitize(out, env={}) == out
    assert "##[" not in out
    for line in out.split("\n"):
        assert all(ch == "\t" or escape_controls(ch) == ch for ch in line)
        assert not line.lstrip().startswith("::")


@given(_HOSTILE_TEXT)
def test_fenced_text_stays_in_its_one_block(text: str) -> None:
    document = f"para\n\n{fenced(text)}\n\nafter\n"
    tokens = MD.parse(document)
    assert [t.type for t in tokens if t.type in ("fence", "code_block")] == ["fence"]
    assert tokens[-2].content == "after"
