"""CS401 reads commands as people write them: ``-m`` only for Python, ``-c`` program text,
shell bodies, files a generate step builds (issue 14, "Commands as people write them")."""

from __future__ import annotations

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.checks.command_files import analyse_command
from pytest_corrsource.results import CheckResult


@pytest.mark.parametrize(
    ("command", "files", "modules"),
    [
        ("python run.py --weights {weights}", ["run.py"], []),
        ("python3.11 -u {repo}/sample.py --out {outdir}/x.txt", ["sample.py"], []),
        ("python -m tiny.gen --n 3", [], ["tiny.gen"]),
        ("python -um tiny.gen", [], ["tiny.gen"]),
        ("python -Wignore::DeprecationWarning -X dev run.py", ["run.py"], []),
        # program text is not a file name, and its arguments still are
        ("python -c 'import model; model.main()' data/in.txt", ["data/in.txt"], []),
        # -m means "module" only for Python
        ("mlflow models predict -m model -i data/test.csv", ["data/test.csv"], []),
        ("./run model.bin -n 256 -i 'Once upon a time'", ["run", "model.bin"], []),
        ("env OMP_NUM_THREADS=1 python gen.py", ["gen.py"], []),
        ("python train", ["train"], []),  # python runs ./train
        ("python", [], []),
        ("python {repo}/run.py --prompt 'a cat/dog story'", ["run.py"], []),
        ("python run.py https://example.org/x.json /etc/hosts", ["run.py"], []),
        (
            "sh -c 'cd src && python train.py < ../data/names.txt > out.txt; ./build/run'",
            ["data/names.txt", "src/train.py", "src/build/run"],
            [],
        ),
        ("bash -c 'python prep.py\npython -m pkg.main'", ["prep.py"], ["pkg.main"]),
    ],
)
def test_analyse_command(command: str, files: list[str], modules: list[str]) -> None:
    named = analyse_command(command)
    assert named.files == files
    assert named.modules == modules


def test_shell_expansions_and_cd_out_are_noted_not_guessed() -> None:
    named = analyse_command("sh -c 'python $SCRIPT; cd /opt && python x.py'")
    assert named.files == []
    assert named.notes == [
        "`$SCRIPT` is expanded by the shell: not analysed",
        "`cd /opt` leaves the repository: later files not analysed",
    ]


def test_unsplittable_command_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="quotation"):
        analyse_command("python 'run.py")


def cs401(
    make_repo: RepoFactory, run_section: str, files: dict[str, str | bytes], name: str = "repo"
) -> CheckResult:
    root = make_repo(MINIMAL_MANIFEST + run_section, files, name=name)
    return PlannedChecks(root)("CS401")


def test_cs401_accepts_a_file_a_generate_step_builds(make_repo: RepoFactory) -> None:
    section = (
        "generate:\n"
        "  - command: sh -c 'cc -o run run.c'\n"
        '    produces: ["{repo}/run"]\n'
        "run:\n"
        "  command: ./run {weights} -n 4\n"
    )
    result = cs401(make_repo, section, {"run.c": "int main(void){return 0;}\n"})
    assert result.outcome == "passed", result.message
    assert result.message == "uses run (written by generate[0])"


def test_cs401_fails_a_file_nothing_ships_or_builds(make_repo: RepoFactory) -> None:
    section = "run:\n  command: ./run {weights} -n 4\n"
    result = cs401(make_repo, section, {})
    assert result.outcome == "failed"
    assert "found: `run.command` names run, not in the repository" in result.message
    assert "or declare a generate step that `produces` them" in result.message


def test_cs401_reads_program_text_and_foreign_m_options(make_repo: RepoFactory) -> None:
    section = "run:\n  command: python -c 'import sys; print(sys.argv)' {weights}\n"
    result = cs401(make_repo, section, {})
    assert result.outcome == "passed", result.message
    assert result.message == "names no repository files"
    mlflow = cs401(
        make_repo,
        "run:\n  command: mlflow models predict -m model -i data/x.csv\n",
        {"data/x.csv": "a,b\n"},
        name="mlflow",
    )
    assert mlflow.outcome == "passed", mlflow.message
    assert mlflow.message == "uses data/x.csv"


def test_cs401_analyses_shell_bodies(make_repo: RepoFactory) -> None:
    section = "run:\n  command: sh -c 'cd src && python sample.py --weights {weights}'\n"
    missing = cs401(make_repo, section, {})
    assert missing.outcome == "failed"
    assert "names src/sample.py, not in the repository" in missing.message
