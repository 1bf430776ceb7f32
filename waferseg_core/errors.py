"""The project's exception types.

Every message says what was expected and what was found, and where (file, line or byte
offset), so that the CLI can print it as one line.
"""

from __future__ import annotations


class WaferSegError(Exception):
    """Base of every error the project raises on purpose."""


class InvalidInputError(WaferSegError, ValueError):
    """A value handed to the core does not have the expected form."""


def offered_count(value: int, offered: tuple[int, ...], what: str) -> int:
    """``value`` if it is one of the ``offered`` counts of ``what`` (views, phases ...).

    Raises:
        InvalidInputError: Any other number.
    """
    if value not in offered:
        raise InvalidInputError(f"expected a number of {what} in {list(offered)}, found {value}")
    return value


class GeometryError(InvalidInputError):
    """A polygon cannot be turned into a valid die region."""


class WaferFileError(WaferSegError):
    """A wafer-map file is malformed, truncated or of an unknown format.

    Args:
        path: The file.
        message: What was expected and what was found.
        line: 1-based line number in a text file, when known.
        offset: 0-based byte offset in a binary file, when known.
    """

    def __init__(
        self, path: str, message: str, *, line: int | None = None, offset: int | None = None
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.offset = offset
        where = self.path
        if line is not None:
            where += f":{line}"
        elif offset is not None:
            where += f" @byte {offset}"
        super().__init__(f"{where}: {message}")


class PermissionDeniedError(WaferSegError):
    """The user's role does not allow the action."""


class ConflictError(WaferSegError):
    """A save started from a stale version: someone else saved first.

    Attributes:
        annotation_id: The annotation.
        expected_version: The version the editor started from.
        current_version: The version in the store now.
        author: Who saved the newer version.
        revision: The newer revision (before/after/when), as the store keeps it.
    """

    def __init__(
        self,
        annotation_id: int,
        expected_version: int,
        current_version: int,
        author: str,
        revision: dict[str, object] | None = None,
    ) -> None:
        self.annotation_id = annotation_id
        self.expected_version = expected_version
        self.current_version = current_version
        self.author = author
        self.revision = revision or {}
        super().__init__(
            f"annotation {annotation_id} was saved by {author} (version {current_version}) after "
            f"the version {expected_version} this edit started from; reload, then edit again"
        )
