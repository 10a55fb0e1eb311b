"""One job on every machine type of a year (data.data_split=dev+eval): trained on the development and
the additional-training (evaluation) types together, each split scored on its own."""

import json
from pathlib import Path

import pandas as pd
import pytest
import scipy.stats

from asd.data.index import DatasetError, machine_data_splits
from asd.ensemble import main as ensemble_cli
from asd.train import train

QUIET = ["callbacks.progress_bar.refresh_rate=0"]


@pytest.fixture
def year_root(tmp_path, synthetic_root) -> Path:
    """A year's tree as DCASE ships it: development types in dev_data, the others in eval_data (with
    renamed test files and their ground truth); the synthetic set's types, one per split."""
    root = tmp_path / "year"
    (root / "dev_data" / "raw").mkdir(parents=True)
    (root / "eval_data" / "raw").mkdir(parents=True)
    (root / "dev_data" / "raw" / "ToyClicker").symlink_to(synthetic_root / "dev_data" / "raw" / "ToyClicker")
    (root / "eval_data" / "raw" / "ToyRotor").symlink_to(synthetic_root / "eval_data" / "raw" / "ToyRotor")
    (root / "ground_truth").symlink_to(synthetic_root / "ground_truth")
    return root


def year_overrides(root: Path, *more: str) -> list[str]:
    return [
        f"data.root={root}",
        "data.synthetic.seed=null",
        "data.data_split=dev+eval",
        "machine.types=[ToyClicker,ToyRotor]",
        "scope=joint",
        "trainer.max_epochs=2",
        *more,
    ]


def hmean_score(summary: pd.DataFrame, machine: str) -> float:
    return float(summary.loc[summary["machine"] == machine, "score"].iloc[0])


def test_one_model_on_both_splits_each_split_scored_on_its_own(run_cli, year_root, tmp_path):
    done = run_cli("asd.train", "-m", *year_overrides(year_root), "seed=1,2", *QUIET)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    job = sweep / "0"
    # one model for both splits' machine types
    assert [p.name for p in (job / "systems").iterdir()] == ["ToyClicker+ToyRotor.pt"]
    summary = pd.read_csv(job / "summary.csv")
    rows = list(summary["machine"])
    assert rows == ["ToyClicker", "ToyRotor", "official score (dev)", "official score (eval)"]
    # each split's official score is its own machine types' (one section each), never the pooled one
    assert hmean_score(summary, "official score (dev)") == pytest.approx(hmean_score(summary, "ToyClicker"))
    assert hmean_score(summary, "official score (eval)") == pytest.approx(hmean_score(summary, "ToyRotor"))
    # the official evaluator's result file, one per split
    for split, machine, other in (("dev", "ToyClicker", "ToyRotor"), ("eval", "ToyRotor", "ToyClicker")):
        first_cells = {row.split(",")[0] for row in (job / f"result_{split}.csv").read_text().splitlines()}
        assert machine in first_cells and other not in first_cells
    assert not (job / "result.csv").exists()
    # the eval split's renamed test files were scored by their ground truth
    submitted = pd.read_csv(job / "submission" / "anomaly_score_ToyRotor_section_00_test.csv", header=None)
    assert submitted[0].str.fullmatch(r"section_00_\d{4}\.wav").all()
    # the multirun's report: each split a dataset of its own, with its own official score over the seeds
    report = (sweep / "summary.md").read_text()
    assert "## year dev (" in report and "## year eval (" in report
    seeds = pd.read_csv(sweep / "seeds.csv")
    official = seeds[seeds["machine"] == "official score"].set_index("dataset")["score mean"]
    per_job = [pd.read_csv(sweep / name / "summary.csv").set_index("machine")["score"] for name in ("0", "1")]
    assert official["year dev"] == pytest.approx(sum(s["official score (dev)"] for s in per_job) / 2)
    assert official["year eval"] == pytest.approx(sum(s["official score (eval)"] for s in per_job) / 2)
    # the data folder moves away after the runs: what follows reads each run's record (run.json), not the data
    record = json.loads((job / "run.json").read_text())
    assert record["machine_splits"] == {"ToyClicker": "dev", "ToyRotor": "eval"} and record["year"] == 2024
    year_root.rename(tmp_path / "moved")
    # the two seeds' ensemble is scored per split too
    assert ensemble_cli([str(sweep / "0"), str(sweep / "1"), "--out", str(tmp_path / "ensemble")]) == 0
    fused = pd.read_csv(tmp_path / "ensemble" / "summary.csv")
    assert list(fused["machine"]) == rows
    assert (tmp_path / "ensemble" / "result_eval.csv").is_file()
    # and a back-end refitted on the run's saved representations
    rescored = run_cli("asd.score", str(job), "backend=selective_mahalanobis", f"hydra.run.dir={tmp_path / 're'}")
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "re" / "summary.csv")["machine"]) == rows


def test_evaluation_split_without_ground_truth_scores_the_development_split(make_cfg, year_root):
    cfg = make_cfg(*year_overrides(year_root, "data.ground_truth_dir=null"))
    metrics, _ = train(cfg)
    run = Path(cfg.paths.output_dir)
    summary = pd.read_csv(run / "summary.csv")
    assert list(summary["machine"]) == ["ToyClicker", "official score"]
    assert metrics["official_score"] == pytest.approx(
        scipy.stats.hmean([metrics[f"ToyClicker/section_00/{m}"] for m in ("auc_source", "auc_target", "pauc")])
    )
    assert not any(key.startswith("ToyRotor/") for key in metrics)
    # the unlabelled split still gets its submission files
    assert (run / "submission" / "anomaly_score_ToyRotor_section_00_test.csv").is_file()


def test_a_machine_type_in_both_splits_or_in_neither_is_an_error(synthetic_root):
    # the synthetic set has ToyRotor in both splits: which one to train and score would be a guess
    with pytest.raises(DatasetError, match=r"ToyRotor.*both .*dev_data/raw/ToyRotor and .*eval_data/raw/ToyRotor"):
        machine_data_splits(synthetic_root, ["ToyClicker", "ToyRotor"], "dev+eval")
    with pytest.raises(DatasetError, match=r"ToyPump.*neither"):
        machine_data_splits(synthetic_root, ["ToyPump"], "dev+eval")
    with pytest.raises(DatasetError, match="dev, eval or dev\\+eval"):
        machine_data_splits(synthetic_root, ["ToyRotor"], "train")
    assert machine_data_splits(synthetic_root, ["ToyClicker", "ToyHum"], "dev+eval") == {
        "ToyClicker": "dev",
        "ToyHum": "dev",
    }
