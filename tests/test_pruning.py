"""ASHA: the rule (glue_bench/pruning.py), the replay on recorded curves (report/replay.py) and the live decision
(train/prune.py), each on hand-built cases whose answers are worked out in the comments."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from job_folders import rte, write_curve_job

from glue_bench.pruning import promotes, rung_epochs
from glue_bench.report.collect import collect
from glue_bench.report.replay import replay, replay_group
from glue_bench.run.options import SlurmOptions
from glue_bench.run.slurm import sbatch_script
from glue_bench.train.prune import decide


def test_rung_epochs():
    assert rung_epochs(10, 1, 3) == [1, 3, 9]
    assert rung_epochs(9, 1, 3) == [1, 3]  # 9 is the last epoch: nothing left to save there
    assert rung_epochs(20, 2, 2) == [2, 4, 8, 16]
    assert rung_epochs(1, 1, 3) == []


def test_promotes_is_the_top_share_of_the_scores_so_far():
    assert promotes(0.5, [0.5])  # the first at a rung always goes on (k = max(1, 1 // 3) = 1)
    assert not promotes(0.4, [0.5, 0.4])  # k = 1: must be the best of 2
    assert promotes(0.6, [0.5, 0.6, 0.4])  # k = 1 of 3
    # 6 scores, reduction 3: k = 2, the second best is 0.8: 0.8 goes on, 0.7 does not
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert promotes(0.8, scores, 3) and not promotes(0.7, scores, 3)
    # reduction 2 on the same six: k = 3, the third best is 0.7
    assert promotes(0.7, scores, 2) and not promotes(0.6, scores, 2)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(2, 5))
def test_promotes_matches_optunas_rule(scores, reduction):
    """Optuna's SuccessiveHalvingPruner promotes when the value is at least the value at index
    max(0, n // reduction - 1) of the competing values sorted best first."""
    ordered = sorted(scores, reverse=True)
    threshold = ordered[max(0, len(scores) // reduction - 1)]
    for score in scores:
        assert promotes(score, scores, reduction) == (score >= threshold)


def test_replay_group_on_hand_built_curves(tmp_path):
    # Four jobs of one group, 4 epochs each (rungs after 1 and 2 epochs with reduction 2), started at t = 0, 1, 2, 3,
    # 10 s per epoch: they reach rung 1 at 10, 11, 12, 13 and rung 2 at 20, 21, 22, 23.
    #   rung 1: a 0.6 (first: on); b 0.5 (k = 1 of [0.6, 0.5]: pruned); c 0.7 (best of 3: on);
    #           d 0.65 (k = 2 of [0.6, 0.5, 0.7, 0.65]: second best 0.65: on)
    #   rung 2 (a, c, d arrive): a 0.62 (on); c 0.75 (best: on); d 0.6 (k = 1 of 3: pruned)
    # Saved: b after 1 epoch of 4 (30 s, 2 devices: 60), d after 2 (20 s).
    curves = {"a": [0.6, 0.62, 0.63, 0.64], "b": [0.5, 0.9, 0.9, 0.9], "c": [0.7, 0.75, 0.76, 0.77],
              "d": [0.65, 0.6, 0.7, 0.71]}
    for k, (name, curve) in enumerate(curves.items()):
        write_curve_job(tmp_path, rte(seed=k, epochs=4, learning_rate=1e-4), curve, start=k,
                        world_size=2 if name == "b" else 1)
    records = sorted(collect(tmp_path), key=lambda r: r.seed)
    stopped = {p.job_id: p for p in replay_group(records, reduction=2, min_epochs=1)}
    assert {records[i].job_id for i in (1, 3)} == set(stopped)
    assert stopped[records[1].job_id].epoch == 1 and stopped[records[1].job_id].saved_seconds == pytest.approx(60)
    assert stopped[records[3].job_id].epoch == 2 and stopped[records[3].job_id].saved_seconds == pytest.approx(20)


def test_replay_reports_savings_and_a_changed_selection(tmp_path):
    # Two settings of one group, one seed each, 3 epochs, reduction 3 (one rung, after epoch 1). The slow starter
    # (lr 1e-3, best at the end: 0.9) arrives second at the rung with 0.4 < 0.5: pruned. Without pruning it is
    # selected (0.9); with pruning lr 1e-4 is (0.6): selection changed, score change -30 points.
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=3), [0.5, 0.55, 0.6], start=0)
    write_curve_job(tmp_path, rte(learning_rate=1e-3, epochs=3), [0.4, 0.8, 0.9], start=1)
    [group] = replay(collect(tmp_path), reduction=3, min_epochs=1)
    assert len(group.pruned) == 1 and group.pruned[0].epoch == 1
    assert group.device_seconds == pytest.approx(60) and group.saved_seconds == pytest.approx(20)
    assert group.saved_share == pytest.approx(1 / 3)
    assert group.changed and group.selected == "lr 0.001, 3 epochs" and group.selected_pruned == "lr 0.0001, 3 epochs"
    assert group.score_change == pytest.approx(-30)
    assert json.dumps(group.to_dict())  # pruning.json's rows are plain data


def test_replay_refuses_a_bad_rule(tmp_path):
    with pytest.raises(ValueError):
        replay([], reduction=1)


def test_live_decision_reads_the_groups_scores_at_the_rung(tmp_path):
    # Two jobs of the group reached epoch 1 with 0.7 and 0.6; a job of another task (0.99) does not compete.
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=4), [0.7, 0.8])
    write_curve_job(tmp_path, rte(learning_rate=2e-4, epochs=4), [0.6])
    write_curve_job(tmp_path, rte(learning_rate=1e-4, epochs=4).replace(task="mrpc"), [0.99])
    me = rte(learning_rate=3e-4, epochs=4, prune="asha", prune_reduction=2)
    out = tmp_path / me.job_id
    # scores at rung 1: [0.7, 0.6, mine]; k = max(1, 3 // 2) = 1: only the best goes on
    assert decide(me, out, 1, 0.71) is None
    pruned = decide(me, out, 1, 0.65)
    assert pruned == {"rung": 0, "epoch": 1, "score": 0.65, "competing": [0.7, 0.65, 0.6], "reduction": 2}
    assert decide(me, out, 3, 0.1) is None  # epoch 3 is no rung of 4 epochs with reduction 2 (rungs 1, 2)
    assert decide(me.replace(prune="none"), out, 1, 0.1) is None


def test_slurm_array_tasks_are_told_to_prune(tmp_path):
    script = sbatch_script(tmp_path, tmp_path / "array.txt", 3, "s", SlurmOptions(prune="asha"))
    assert "--prune asha" in script
    assert "--prune" not in sbatch_script(tmp_path, tmp_path / "array.txt", 3, "s", SlurmOptions())
