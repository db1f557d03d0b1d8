"""A run's tags and the params it can be searched by, one indexed row each.

The run's parameters and logged_params stay its record (JSON, in the order given); these rows
are what a search (pipelines/run_search.py) reads from an index, so that `params.lr = "0.1"`
costs the same at 100 runs and at 100,000. Values are capped at MAX_VALUE characters: a
PostgreSQL index row holds about 2,700 bytes, and a search compares short values."""

from django.db import models

from core.models import Project

MAX_KEY = 250  # mlflow's MAX_ENTITY_KEY_LENGTH
MAX_VALUE = 500


class _RunValue(models.Model):
    # not db_index: the unique (run, key) constraint finds a run's rows
    run = models.ForeignKey(
        "pipelines.PipelineRun", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The run's project, copied (it never changes): a search reads one index of these rows
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=MAX_KEY)
    value = models.CharField(max_length=MAX_VALUE, blank=True)

    class Meta:
        abstract = True
        ordering = ["key"]

    def __str__(self):
        return f"{self.key}={self.value} of run {self.run_id}"


class RunTag(_RunValue):
    """A tag of a run: set from its page, the API, or by its code (mlflow.set_tag, a
    metrics_file line)."""

    class Meta(_RunValue.Meta):
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_tag_once")]
        indexes = [models.Index(fields=["project", "key", "value"], name="run_tag_search")]


class RunParam(_RunValue):
    """A parameter of a run as a search sees it: its input parameters, and what its code logged
    (mlflow.log_param) over them."""

    class Meta(_RunValue.Meta):
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_param_once")]
        indexes = [models.Index(fields=["project", "key", "value"], name="run_param_search")]
