"""CS201 install declared, CS202 install works in a fresh isolated environment."""

from __future__ import annotations

import shutil

from pytest_corrsource.checks.api import (
    CheckContext,
    CheckFailed,
    CheckUnverifiable,
    Finding,
)


def check_declared(ctx: CheckContext) -> Finding:
    """CS201: install commands and at least one dependency specification, all present."""
    install = ctx.manifest.install
    assert install is not None  # the plan reports an undeclared install on its own
    problems = []
    if not install.commands:
        problems.append("`install.commands` is empty: nothing says how to install")
    if not install.requirements:
        problems.append(
            "`install.requirements` names no dependency specification (requirements.txt, "
            "pyproject.toml, environment.yml …)"
        )
    missing = [r.path for r in install.requirements if not (ctx.root / r.path).is_file()]
    if missing:
        problems.append(f"missing from the repository: {', '.join(missing)}")
    if problems:
        raise CheckFailed("; ".join(problems))
    names = ", ".join(r.path for r in install.requirements)
    return Finding(message=f"{len(install.commands)} command(s); dependencies in {names}")


def check_environment(ctx: CheckContext) -> Finding:
    """CS202: the install commands succeed in a fresh isolated environment (after the system
    programs ``install.system`` declares are found on this machine)."""
    from pytest_corrsource.sandbox.steps import environment_warnings, get_environment

    install = ctx.manifest.install
    missing = [tool for tool in (install.system if install else ()) if not shutil.which(tool)]
    if missing:
        # A limit of this machine, not of the repository: it declared what it needs.
        raise CheckUnverifiable(
            f"`install.system` needs {', '.join(missing)}, not installed here (install "
            f"{'them' if len(missing) > 1 else 'it'} with the system's package manager)"
        )
    env = get_environment(ctx)
    how = "reused from the cache (built with" if env.reused else "built with"
    seeded = (
        f" (from environment {env.seeded_from} of this repository's other code: its "
        "dependencies kept, the repository's own package reinstalled)"
        if env.seeded_from and not env.reused
        else ""
    )
    return Finding(
        message=f"environment {env.key[:12]} {how} {env.installer}"
        f"{')' if env.reused else ''}{seeded} at {env.root}",
        warnings=[*environment_warnings(ctx), *env.warnings],
        data={
            "environment": env.key,
            "reused": env.reused,
            "installer": env.installer,
            "seeded_from": env.seeded_from,
        },
    )
