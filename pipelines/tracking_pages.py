"""What the run page shows and takes for a run's name, notes and tags (pipelines/tracking.py)."""

from django.core.exceptions import ValidationError

from core.markdown_html import render_markdown
from pipelines.tracking import run_tags

EMPTY_TAG_ROWS = 3  # rows to add tags in, below the run's own


def notes_context(run, *, values=None, errors=None) -> dict:
    """The notes card: the run's tags and notes as HTML, and its edit form (with `values`
    as typed and `errors` after a refused save)."""
    tags = run_tags(run)
    values = values or {
        "name": run.name,
        "description": run.description,
        "tags": list(tags.items()),
    }
    rows = values["tags"] + [("", "")] * EMPTY_TAG_ROWS
    return {
        "run_tags": tags,
        "notes_html": render_markdown(run.description) if run.description.strip() else "",
        "edit": {**values, "tag_rows": rows},
        "edit_errors": errors or {},
    }


def posted_edit(data) -> dict:
    """The edit form's fields as typed: name, description and the tag rows (key, value)."""
    rows = list(zip(data.getlist("tag_key"), data.getlist("tag_value"), strict=False))
    return {
        "name": data.get("name", ""),
        "description": data.get("description", ""),
        "tags": [(key.strip(), value) for key, value in rows if key.strip() or value.strip()],
    }


def tags_from_rows(rows) -> dict[str, str]:
    """The tag rows as a mapping; ValidationError on 'tags' for a value without a key or a key
    given twice."""
    tags, problems = {}, []
    for key, value in rows:
        if not key:
            problems.append(f"The value {value[:40]!r} has no key.")
        elif key in tags:
            problems.append(f"The key {key[:40]!r} is given twice.")
        else:
            tags[key] = value
    if problems:
        raise ValidationError({"tags": problems})
    return tags
