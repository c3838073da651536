"""YAML from the repository read as plain data, with a nesting limit.

Stage: below everything that reads YAML; PyYAML only. ``yaml.safe_load`` builds no objects,
but PyYAML composes nodes recursively: a file of 10,000 `[` ends in a RecursionError, a
crash wherever it is read. The manifest, ``dvc.yaml``/``dvc.lock``/``*.dvc``, conda
environment files, the model card's front matter and the files ``corrsource init`` reads all
go through :func:`load_plain_yaml` (or, for the manifest's located nodes,
:func:`depth_limited_loader`). Callers bound the text's size.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_NESTING", "TooDeep", "depth_limited_loader", "load_plain_yaml"]

#: Deepest nesting of lists and mappings (a manifest's schema needs 5). PyYAML
#: composes nodes recursively: 10,000 `[` would otherwise end in a RecursionError.
MAX_NESTING = 64


class TooDeep(Exception):
    """A node nested deeper than :data:`MAX_NESTING`, at its line and column (1-based)."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__(line, column)
        self.line = line
        self.column = column


def depth_limited_loader(text: str | bytes) -> Any:
    """A ``yaml.SafeLoader`` for *text* that refuses nesting deeper than :data:`MAX_NESTING`
    before recursing into it (raises :class:`TooDeep` at the offending node)."""
    import yaml

    class Loader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise TooDeep(mark.line + 1, mark.column + 1)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return Loader(text)


def load_plain_yaml(text: str | bytes) -> Any:
    """*text* as plain data (``yaml.safe_load`` semantics; bytes are decoded as PyYAML does,
    by their byte-order mark) with the nesting limit. Raises ``ValueError`` for anything that
    is not such a document; the caller bounds *text*'s size."""
    import yaml

    loader = depth_limited_loader(text)
    try:
        return loader.get_single_data()
    except TooDeep as exc:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep (line {exc.line})") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"not YAML: {exc}") from None
    finally:
        loader.dispose()
