"""Runs found by an expression in MLflow's search syntax, where it fits:

    metrics.accuracy > 0.9 and params.n_estimators = "200" and tags.team = "vision"
    status = "failed" and name LIKE "baseline%"

Comparisons joined by `and`. A key is `metrics.NAME` (its last value; = != > >= < <= a
number), `params.NAME` or `tags.NAME` (= != LIKE ILIKE a quoted string), or an attribute, bare
or as `attributes.NAME`: status, name (also run_name), type, package, version (strings), score
and id (numbers). A NAME holding spaces or operators goes in backticks or double quotes:
metrics.`eval acc`. MLflow's statuses (FINISHED, RUNNING…) are understood. A run without the
metric, param or tag matches no comparison of it, as in MLflow.

Each comparison is read from one index (MetricSeries' metric_high/metric_low, RunParam's and
RunTag's project-key-value), so a search costs about the same at 100 runs and at 100,000.
Anything it can't read is a ValidationError on 'filter' naming the token and its position."""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat

from packages.models import Package, PackageVersion
from pipelines.models import MetricSeries, PipelineRun, RunParam, RunTag

MAX_LENGTH = 2000
LISTED_RUNS = 2000
MOST_COMPARISONS = 20
NUMBER_OPERATORS = ("=", "!=", ">", ">=", "<", "<=")
TEXT_OPERATORS = ("=", "!=", "LIKE", "ILIKE")
_LOOKUPS = {"=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
PREFIXES = {
    **dict.fromkeys(("metrics", "metric"), "metrics"),
    **dict.fromkeys(("params", "param", "parameters"), "params"),
    **dict.fromkeys(("tags", "tag"), "tags"),
    **dict.fromkeys(("attributes", "attribute", "attr", "run"), "attributes"),
}
# attribute → (the run's field, is a number)
ATTRIBUTES = {
    "status": ("status", False),
    "name": ("name", False),
    "run_name": ("name", False),
    "type": ("type", False),
    "package": ("package__name", False),
    "version": ("version__number", False),
    "score": ("score", True),
    "id": ("pk", True),
}
MLFLOW_STATUSES = {"finished": PipelineRun.SUCCESSFUL, "running": PipelineRun.RUNNING}

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<operator>!=|>=|<=|==|=|>|<)
    |(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<number>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)(?![\w.])
    |(?P<key>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|"[^"]+"|[\w/:.\-]+))?)
    |(?P<other>\S)
    )""",
    re.VERBOSE,
)


@dataclass
class Token:
    kind: str
    text: str
    at: int  # its position in the expression, from 1


def _tokens(expression: str) -> list[Token]:
    found = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind is None:  # trailing blanks
            break
        found.append(Token(kind, match[kind], match.start(kind) + 1))
    return found


def _error(message: str, token: Token | None) -> ValidationError:
    where = f" at position {token.at}" if token else " at the end"
    found = f", found {token.text!r}" if token else ""
    return ValidationError({"filter": f"{message}{where}{found}."})


@dataclass
class Comparison:
    kind: str  # metrics, params, tags, attributes
    name: str
    operator: str
    value: object


def parse(expression: str) -> list[Comparison]:
    """The comparisons of `expression`, or a ValidationError on 'filter' at its bad token."""
    if len(expression) > MAX_LENGTH:
        raise ValidationError({"filter": f"A filter is at most {MAX_LENGTH} characters."})
    tokens = _tokens(expression)
    comparisons, at = [], 0

    def next_token():
        return tokens[at] if at < len(tokens) else None

    while True:
        key = next_token()
        comparison, at = _comparison(tokens, at)
        comparisons.append(comparison)
        if len(comparisons) > MOST_COMPARISONS:
            raise _error(f"At most {MOST_COMPARISONS} comparisons", key)
        joiner = next_token()
        if joiner is None:
            return comparisons
        if joiner.kind != "key" or joiner.text.lower() != "and":
            raise _error("Expected 'and' between comparisons", joiner)
        at += 1
        if next_token() is None:
            raise _error("Expected a comparison after 'and'", None)


def _comparison(tokens: list[Token], at: int) -> tuple[Comparison, int]:
    key = tokens[at] if at < len(tokens) else None
    if key is None or key.kind != "key":
        raise _error(
            "Expected a key: metrics.NAME, params.NAME, tags.NAME or an attribute "
            f"({', '.join(ATTRIBUTES)})",
            key,
        )
    kind, name, numeric = _key(key)
    operator = tokens[at + 1] if at + 1 < len(tokens) else None
    allowed = NUMBER_OPERATORS if numeric else TEXT_OPERATORS
    text = operator.text.upper() if operator else ""
    text = "=" if text == "==" else text
    if operator is None or operator.kind not in ("operator", "key") or text not in allowed:
        raise _error(f"Expected an operator after {key.text!r} ({', '.join(allowed)})", operator)
    value = tokens[at + 2] if at + 2 < len(tokens) else None
    if numeric:
        if value is None or value.kind != "number":
            raise _error(f"Expected a number after {key.text} {text}", value)
        return Comparison(kind, name, text, float(value.text)), at + 3
    if value is None or value.kind != "string":
        hint = f' (in quotes: "{value.text}")' if value and value.kind == "number" else ""
        raise _error(f"Expected a quoted string after {key.text} {text}{hint}", value)
    return Comparison(kind, name, text, _unquoted(value.text)), at + 3


def _key(token: Token) -> tuple[str, str, bool]:
    """(kind, name, compared as a number) of a key token."""
    prefix, dot, name = token.text.partition(".")
    if not dot:
        prefix, name = "attributes", token.text
    kind = PREFIXES.get(prefix.lower())
    if kind is None:
        raise _error(
            f"Unknown key {prefix!r}: use metrics., params., tags. or an attribute "
            f"({', '.join(ATTRIBUTES)})",
            token,
        )
    if name[:1] in '`"' and name[-1:] == name[:1] and len(name) > 1:
        name = name[1:-1]
    if kind == "attributes":
        if name.lower() not in ATTRIBUTES:
            raise _error(f"Unknown attribute {name!r}: one of {', '.join(ATTRIBUTES)}", token)
        return kind, name.lower(), ATTRIBUTES[name.lower()][1]
    return kind, name, kind == "metrics"


def _unquoted(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _text_condition(field: str, operator: str, value: str) -> Q:
    """`field` against a string: =, !=, or a LIKE pattern (% any text, _ one character) read
    as an index range where it is a prefix ("base%")."""
    if operator == "=":
        return Q(**{field: value})
    if operator == "!=":
        return ~Q(**{field: value})
    insensitive = "i" if operator == "ILIKE" else ""
    body = value.strip("%")
    if "_" not in value and "%" not in body:
        starts, ends = value.startswith("%"), value.endswith("%")
        lookup = {
            (False, False): "exact",
            (False, True): "startswith",
            (True, False): "endswith",
            (True, True): "contains",
        }[(starts, ends)]
        if insensitive and lookup == "exact":
            lookup = "iexact"
        elif insensitive:
            lookup = f"i{lookup}"
        return Q(**{f"{field}__{lookup}": body})
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
    return Q(**{f"{field}__{insensitive}regex": f"^{pattern}$"})


def _status(value: str) -> str:
    value = value.lower()
    return MLFLOW_STATUSES.get(value, value)


def _condition(comparison: Comparison, project) -> Q:
    kind, name, operator, value = (
        comparison.kind,
        comparison.name,
        comparison.operator,
        comparison.value,
    )
    if kind != "attributes":
        return _rows(comparison, project)
    if kind == "attributes":
        field, numeric = ATTRIBUTES[name]
        if field == "status":
            value = _status(value)
        if field == "package__name":  # the package's id, found first: no join in the list
            named = Package.objects.filter(project=project)
            return Q(package__in=named.filter(_text_condition("name", operator, value)))
        if field == "version__number":
            numbered = PackageVersion.objects.filter(package__project=project).annotate(
                number=Concat(Cast("major", CharField()), Value("."), Cast("minor", CharField()))
            )
            return Q(version__in=numbered.filter(_text_condition("number", operator, value)))
        if numeric:
            if operator == "!=":
                return ~Q(**{field: value}) & Q(**{f"{field}__isnull": False})
            return Q(**{f"{field}__{_LOOKUPS[operator]}": value})
        return _text_condition(field, operator, value)
    return _rows(comparison, project)


def _rows(comparison: Comparison, project):
    """The metric, param or tag rows the comparison matches (their run_id: the runs')."""
    name, operator, value = comparison.name, comparison.operator, comparison.value
    if comparison.kind == "metrics":
        rows = MetricSeries.objects.filter(project=project, name=name)
        if operator == "!=":
            return rows.exclude(last=value).filter(last__isnull=False)
        return rows.filter(**{f"last__{_LOOKUPS[operator]}": value})
    model = RunParam if comparison.kind == "params" else RunTag
    rows = model.objects.filter(project=project, key=name)
    return rows.filter(_text_condition("value", operator, value))


def runs_matching(runs, expression: str, *, project):
    """(`runs` narrowed to those `expression` matches, whether counting them is cheap); ""
    matches all.

    A metric, param or tag comparison matching at most LISTED_RUNS runs is read as their ids
    from its index, and the comparisons' ids are intersected: the list then reads those runs
    by id, whatever their age. One matching more is a test of each run the list reads, newest
    first (Exists on the run's own row): it matches so many that a page is found within a few
    hundred runs; but counting the runs through such tests would test every run."""
    if not expression.strip():
        return runs, True
    ids, tested = None, 0
    for comparison in parse(expression):
        condition = _condition(comparison, project)
        if isinstance(condition, Q):
            runs = runs.filter(condition)
            continue
        found = list(condition.values_list("run_id", flat=True)[: LISTED_RUNS + 1])
        if len(found) > LISTED_RUNS:
            runs, tested = runs.filter(Exists(condition.filter(run=OuterRef("pk")))), tested + 1
        else:
            ids = set(found) if ids is None else ids & set(found)
    if ids is not None:
        runs = runs.filter(pk__in=sorted(ids))
    return runs, ids is not None or not tested
