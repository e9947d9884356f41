import json
import math

import numpy as np

from eyepurify.bench.objective import equivalent_iterations, format_iterations, median_iterations
from eyepurify.cli import main


def test_equivalent_iterations_on_hand_made_curves():
    curve = [10.0, 8.0, 6.0, 5.0, 4.0]  # iteration 0 = the input
    assert equivalent_iterations(6.0, curve) == 2  # ≤, first reached at iteration 2
    assert equivalent_iterations(5.5, curve) == 3
    assert equivalent_iterations(12.0, curve) == 0  # the input already scores as well
    assert math.isinf(equivalent_iterations(1.0, curve))
    assert equivalent_iterations(7.0, [10.0, 6.0, 9.0, 5.0]) == 1  # first, not last, crossing
    assert median_iterations([2.0, 3.0, 10.0]) == 3.0
    assert math.isinf(median_iterations([2.0, math.inf, math.inf]))
    assert format_iterations(math.inf, 100) == ">100" and format_iterations(3.0, 100) == "3"


def test_bench_objective_quick(tmp_path, capsys):
    assert main(["bench", "objective", "--quick", "--out", str(tmp_path)]) == 0
    headline = capsys.readouterr().out.strip().splitlines()[-1]
    assert headline.startswith("the feed-forward output equals")
    res = json.loads((tmp_path / "objective.json").read_text())
    assert res["settings"]["loss"]["beta"] == 10.0  # the shipped purifier's training config
    (size,) = res["sizes"]
    assert len(size["images"]) == 2
    for im in size["images"]:
        curve = im["lbfgs_total"]
        assert len(curve) == size["iters"] + 1 and all(np.isfinite(curve))
        assert curve[-1] < curve[0]  # L-BFGS lowers the objective
        assert np.isfinite(im["feed_forward"]["total"]) and im["feed_forward"]["total"] > 0
        eq = im["equivalent_iterations"]
        assert eq is None or curve[int(eq)] <= im["feed_forward"]["total"]
    assert (tmp_path / "objective_curves.png").stat().st_size > 1000
    assert "| 32×48 |" in (tmp_path / "objective.md").read_text()
