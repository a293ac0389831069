from glue_bench.tasks import GLUE_TASKS, TASKS, get_task


def test_nine_tasks_and_ax():
    assert GLUE_TASKS == ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
    assert set(TASKS) == {*GLUE_TASKS, "ax"}


def test_submission_files_are_the_eleven_leaderboard_files():
    files = [f for name in GLUE_TASKS for f in TASKS[name].submission_files.values()]
    assert sorted(files) == sorted(["CoLA.tsv", "SST-2.tsv", "MRPC.tsv", "STS-B.tsv", "QQP.tsv", "MNLI-m.tsv",
                                    "MNLI-mm.tsv", "QNLI.tsv", "RTE.tsv", "WNLI.tsv", "AX.tsv"])


def test_official_sizes_and_labels():
    assert TASKS["qqp"].sizes == {"train": 363846, "dev": 40430, "test": 390965}
    assert TASKS["mnli"].sizes["dev_mismatched"] == 9832
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["wnli"].label_names == ("not_entailment", "entailment")  # reversed vs RTE
    assert TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1


def test_task_scores_follow_the_glue_paper():
    assert TASKS["mrpc"].score == (("dev", "f1"), ("dev", "accuracy"))
    assert TASKS["mnli"].score == (("dev_matched", "accuracy"), ("dev_mismatched", "accuracy"))
    assert TASKS["cola"].score == (("dev", "matthews_correlation"),)


def test_get_task_accepts_glue_spellings():
    assert get_task("SST-2").name == "sst2"
    assert get_task("STS-B").name == "stsb"
