"""The calls a run makes on its package's train.Main, in the order the packages contract gives
for the run's type."""

from pipelines.models import PipelineRun
from pipelines.parameters import DIRECTORIES


def call_plan(run, variables) -> list[list]:
    """[method, folder argument, guard?] for each call, folders relative to the package."""
    here = {name: f"./{variables[name]}" for name in DIRECTORIES}
    if run.type == PipelineRun.TRAIN:
        return [["train", here["data_directory"]], ["save", None]]
    if run.type == PipelineRun.EVALUATE:
        return [["evaluate", here["data_directory"]]]
    process_data = ["process_data", here["data_directory"]]
    if run.evaluation_dataset:  # it is at test_data_directory: never mixed with a test split
        process_data.append(
            {
                "unchanged": here["test_data_directory"],
                "reason": (
                    "process_data wrote into test_data_directory "
                    f"({variables['test_data_directory']}), where the evaluation dataset is: "
                    "with an evaluation dataset, evaluate() scores it as given, so process_data "
                    "must write no test split"
                ),
            }
        )
    return [
        process_data,
        ["train", here["training_data_directory"]],
        ["evaluate", here["test_data_directory"]],
        ["save", None],
    ]
