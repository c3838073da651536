"""Write the manifest's JSON Schema: ``python -m pytest_corrsource.schema > FILE``.

The shipped ``corresponding-source.schema.json`` is this output; a test keeps them equal.
"""

from __future__ import annotations

import json

from pytest_corrsource.schema.spec import json_schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
