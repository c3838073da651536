from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_corrsource.sandbox.placeholders import (
    PlaceholderError,
    PlaceholderValues,
    expand_command,
    expand_path,
)

VALUES = PlaceholderValues(
    weights=("/scratch/my repo/weights/a.safetensors", "/scratch/my repo/weights/b.bin"),
    outdir="/scratch/out dir",
    repo="/scratch/my repo",
    python="/env/bin/python",
)


def test_weights_default_and_indexed() -> None:
    assert expand_command("python gen.py --weights {weights} --other={weights[1]}", VALUES) == [
        "python",
        "gen.py",
        "--weights",
        "/scratch/my repo/weights/a.safetensors",
        "--other=/scratch/my repo/weights/b.bin",
    ]
    assert expand_command("x {weights[0]}", VALUES) == ["x", VALUES.weights[0]]


def test_path_with_spaces_stays_one_token() -> None:
    argv = expand_command("{python} {repo}/run.py --out {outdir}/model.npz", VALUES)
    assert argv == [
        "/env/bin/python",
        "/scratch/my repo/run.py",
        "--out",
        "/scratch/out dir/model.npz",
    ]


def test_quoting_is_shell_like() -> None:
    assert expand_command("""sh -c 'echo "hi there" {outdir}'""", VALUES) == [
        "sh",
        "-c",
        'echo "hi there" /scratch/out dir',
    ]
    assert expand_command('a "b c" d\\ e', VALUES) == ["a", "b c", "d e"]


def test_substituted_value_is_not_reparsed() -> None:
    hostile = "{outdir} ; rm -rf '/'"
    values = PlaceholderValues(weights=(hostile,), outdir=None, repo="/r", python=None)
    assert expand_command("cat {weights}", values) == ["cat", hostile]


def test_escaped_braces() -> None:
    assert expand_command("awk '{{print $1}}' {repo}/f", VALUES) == [
        "awk",
        "{print $1}",
        "/scratch/my repo/f",
    ]
    assert expand_path("{{weights}}", VALUES) == "{weights}"
    assert expand_path("{{{repo}}}", VALUES) == "{/scratch/my repo}"


def test_unknown_placeholder_is_named_with_known_list() -> None:
    with pytest.raises(PlaceholderError) as info:
        expand_command("python x.py {wieghts}", VALUES)
    message = str(info.value)
    assert "{wieghts}" in message
    for known in ("{weights}", "{weights[N]}", "{outdir}", "{repo}", "{python}"):
        assert known in message


@pytest.mark.parametrize("command", ["echo ${HOME}", "awk '{print $1}'", "x {}", "x '{ weights }'"])
def test_other_braced_text_is_an_error(command: str) -> None:
    with pytest.raises(PlaceholderError, match="unknown placeholder"):
        expand_command(command, VALUES)


@pytest.mark.parametrize("command", ["echo {", "echo }", "echo {weights", "echo a}b"])
def test_lone_brace_is_an_error(command: str) -> None:
    with pytest.raises(PlaceholderError, match="unmatched"):
        expand_command(command, VALUES)


def test_weights_index_out_of_range() -> None:
    with pytest.raises(PlaceholderError, match=r"\{weights\[5\]\}.*out of range.*2 weights"):
        expand_command("x {weights[5]}", VALUES)


@pytest.mark.parametrize("field", ["weights[-1]", "weights[x]", "weights[]", "weights[1.0]"])
def test_weights_bad_index(field: str) -> None:
    with pytest.raises(PlaceholderError, match="non-negative integer"):
        expand_command("x {" + field + "}", VALUES)


def test_missing_values() -> None:
    empty = PlaceholderValues(weights=(), outdir=None, repo="/r", python=None)
    with pytest.raises(PlaceholderError, match="no output folder"):
        expand_command("x {outdir}/a", empty)
    with pytest.raises(PlaceholderError, match="no weights"):
        expand_command("x {weights}", empty)
    with pytest.raises(PlaceholderError, match="out of range"):
        expand_command("x {weights[0]}", empty)
    with pytest.raises(PlaceholderError, match="interpreter"):
        expand_command("{python} x.py", empty)
    assert expand_command("x {repo}", empty) == ["x", "/r"]


def test_shlex_error_becomes_placeholder_error() -> None:
    with pytest.raises(PlaceholderError, match="closing quotation"):
        expand_command("python -c 'print(1)", VALUES)


def test_expand_path_does_not_split() -> None:
    assert expand_path("{outdir}/my model.npz", VALUES) == "/scratch/out dir/my model.npz"
    assert expand_path("'quoted' path", VALUES) == "'quoted' path"
    with pytest.raises(PlaceholderError, match="no output folder"):
        expand_path("{outdir}/x", PlaceholderValues((), None, "/r", None))


def test_empty_command() -> None:
    assert expand_command("", VALUES) == []
    assert expand_command("   ", VALUES) == []


@given(st.text())
def test_arbitrary_command_gives_list_or_placeholder_error(command: str) -> None:
    try:
        result = expand_command(command, VALUES)
    except PlaceholderError:
        return
    assert isinstance(result, list)
    assert all(isinstance(token, str) for token in result)


@given(st.text(alphabet=st.sampled_from(list("{}[]0123456789weightsoutdirrepopython '\"\\ "))))
def test_brace_heavy_strings_give_str_or_placeholder_error(template: str) -> None:
    try:
        assert isinstance(expand_path(template, VALUES), str)
        assert isinstance(expand_command(template, VALUES), list)
    except PlaceholderError:
        pass


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=50))
def test_brace_free_text_round_trips_through_expand_path(text: str) -> None:
    assert expand_path(text, VALUES) == text
