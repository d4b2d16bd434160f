"""A GitHub-flavoured Markdown table from rows of data."""

__all__ = ["table"]


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header, rows):
    """``header`` (column names) and ``rows`` (sequences of values) as Markdown lines."""
    lines = ["| " + " | ".join(_cell(name) for name in header) + " |",
             "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, the header {len(header)}: {row!r}")
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)
