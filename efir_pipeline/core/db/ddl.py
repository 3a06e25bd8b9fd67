"""Small DDL helpers shared by migrations (kept stable: old revisions import them)."""

from __future__ import annotations


def literal(text: str) -> str:
    """A SQL string literal (migrations write fixed text, never user input)."""
    return "'" + text.replace("'", "''") + "'"


def comment_statements(
    kind: str, relation: str, table_comment: str, columns: dict[str, str]
) -> list[str]:
    """COMMENT ON statements for a relation and its columns.

    ``kind`` is TABLE, VIEW or MATERIALIZED VIEW; column comments use COMMENT ON COLUMN
    whatever the kind.
    """
    statements = [f"COMMENT ON {kind} {relation} IS {literal(table_comment)}"]
    statements += [
        f"COMMENT ON COLUMN {relation}.{column} IS {literal(text)}"
        for column, text in columns.items()
    ]
    return statements
