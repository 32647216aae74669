"""Inputs that fool a naive fit: duplicate rows, half-bad columns,
models too big for the data, paths the system refuses. Small data, few sweeps; most
cases stop before any fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from funbat import FunBaT, FunBaTWarning, InputError, cli
from funbat.backends import entries_from_input
from funbat.data import as_modes, drop_duplicate_rows
from funbat.datasets import make_synthetic
from funbat.estimator import check_cost, supported_ranks
from funbat.inference import sweep_cost


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def once_and_thrice():
    """The same 60 rows fitted once, and concatenated three times (a copied file)."""
    d = make_synthetic(60, n_unique=30, noise_std=0.1, seed=1)
    fit = dict(rank=2, max_iter=6, random_state=0)
    once = FunBaT(**fit).fit(d.X, d.y)
    with pytest.warns(FunBaTWarning, match="120 of 180 rows repeat another row exactly"):
        thrice = FunBaT(**fit).fit(pd.concat([d.X] * 3, ignore_index=True), np.tile(d.y, 3))
    return d, once, thrice


# -- duplicates -------------------------------------------------------------------------


def test_copied_rows_do_not_shrink_the_noise(once_and_thrice):
    """Before, the copies made the noise std 0.0045 (true 0.1) and the intervals cover 3%."""
    _, once, thrice = once_and_thrice
    assert thrice.n_train_ == 60
    assert thrice.noise_variance_ == pytest.approx(once.noise_variance_, rel=1e-9)
    assert thrice.recalibration_ == once.recalibration_


def test_intervals_far_from_the_data_are_wider_than_near_it(once_and_thrice):
    d, _, thrice = once_and_thrice
    lo, hi = thrice.predict_interval(d.X)
    far = pd.DataFrame({c: [101.0, -100.0] for c in d.X.columns})  # ranges are [0, 1]
    flo, fhi = thrice.predict_interval(far)
    assert np.all(fhi - flo > np.median(hi - lo))


def test_duplicates_keep_fits_every_row_without_a_warning(once_and_thrice):
    d, _, _ = once_and_thrice
    X, y = pd.concat([d.X] * 3, ignore_index=True), np.tile(d.y, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunBaTWarning)
        kept = FunBaT(rank=2, max_iter=2, random_state=0, duplicates="keep").fit(X, y)
    assert kept.n_train_ == 180
    with pytest.raises(InputError, match="duplicates"):
        FunBaT(duplicates="some").fit(X, y)


def test_repeated_coordinates_with_different_targets_are_kept():
    idx = np.array([[0, 1], [0, 1], [0, 1], [1, 0]])
    y = np.array([1.0, 1.0, 2.0, 1.0])
    kept, y_kept, n = drop_duplicate_rows(idx, y)
    assert n == 1
    np.testing.assert_array_equal(kept, idx[[0, 2, 3]])
    np.testing.assert_array_equal(y_kept, y[[0, 2, 3]])


# -- columns that are almost numbers or dates ---------------------------------------------


def _dates(n=40):
    days = pd.Timestamp("2021-01-01") + pd.to_timedelta(np.arange(n), "D")
    return list(days.strftime("%Y-%m-%d"))


def test_mostly_dates_with_a_bad_cell_is_refused_naming_it():
    day = _dates()
    day[7] = "not a date"
    X = pd.DataFrame({"day": day, "b": np.arange(40.0)})
    with pytest.raises(
        InputError, match=r"'day' is mostly dates but 1 of its 40 cells .*row 7: 'not a date'"
    ):
        as_modes(X)
    assert as_modes(X, discrete=["day"])[3] == ["discrete", "continuous"]  # declared: categories


def test_dates_as_text_are_refused_in_the_library():
    with pytest.raises(InputError, match="'day' holds dates as text; convert it"):
        as_modes(pd.DataFrame({"day": _dates()}))


def test_mostly_numbers_with_bad_cells_is_refused_naming_them():
    x = [str(v) for v in range(40)]
    x[3], x[9] = "?", "n/a "
    with pytest.raises(
        InputError, match=r"mostly numbers but 2 of its 40 cells .*row 3: '\?', row 9"
    ):
        as_modes(pd.DataFrame({"x": np.array(x, dtype=object)}))


def test_object_numbers_are_a_continuous_mode_and_categories_stay_discrete():
    X = np.array([[0.5, "a"], [1, "b"], [2.5, "1"], [np.float64(3), "b"]], dtype=object)
    names, columns, _, kinds = as_modes(X)
    assert kinds == ["continuous", "discrete"]
    np.testing.assert_array_equal(columns[0], [0.5, 1.0, 2.5, 3.0])


def test_predict_reads_object_numbers_as_in_training(once_and_thrice):
    d, once, _ = once_and_thrice
    X_obj = d.X.head(5).astype(object)
    np.testing.assert_array_equal(once.predict(X_obj), once.predict(d.X.head(5)))


# -- models too big for the data ----------------------------------------------------------


def test_a_core_bigger_than_the_data_is_capped_with_a_warning():
    with pytest.warns(FunBaTWarning, match="rank 50x50x50 makes a Tucker core of 125,000"):
        ranks = supported_ranks("tucker", (50, 50, 50), (200, 200, 200), 300)
    assert ranks == (6, 7, 7) and np.prod(ranks) <= 300
    assert supported_ranks("cp", (50, 50, 50), (200, 200, 200), 300) == (50, 50, 50)
    with pytest.warns(FunBaTWarning, match="more than the 2 observations"):
        assert np.prod(supported_ranks("tucker", (3, 3), (2, 2), 2)) <= 2  # two rows


def test_a_handful_of_rows_warns_that_the_priors_decide():
    d = make_synthetic(5, n_modes=2, seed=2)
    entries = entries_from_input(d.X, d.y)
    with pytest.warns(FunBaTWarning, match="only 5 training entries"):
        FunBaT(rank=1)._spec(entries.encodings, entries.n)
    big = make_synthetic(40, n_modes=2, seed=2)
    entries = entries_from_input(big.X, big.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunBaTWarning)
        FunBaT(rank=1)._spec(entries.encodings, entries.n)


def test_the_estimator_fits_the_capped_rank():
    d = make_synthetic(30, seed=2)
    entries = entries_from_input(d.X, d.y)
    with pytest.warns(FunBaTWarning, match="fitting rank 3x3x3"):
        spec, _ = FunBaT(rank=50)._spec(entries.encodings, entries.n)
    assert spec.ranks == (3, 3, 3)


def test_many_modes_too_big_to_fit_are_refused_before_any_work():
    cost = sweep_cost("tucker", (2,) * 10, (20000,) * 10, 20000)
    assert cost.core_entries == 1024 and cost.statistic_bytes > 16 * 2**30
    with pytest.raises(InputError, match="too big to fit: 10 modes of rank 2x2x2x2x2x2x2x2x2x2"):
        check_cost("tucker", (2,) * 10, (20000,) * 10, 20000)
    with pytest.warns(FunBaTWarning, match="this fit will be slow: 3 modes of rank 10x10x10"):
        check_cost("tucker", (10, 10, 10), (300, 300, 300), 300)
    check_cost("cp", (3,) * 10, (20000,) * 10, 20000)  # no core: fine


def _wide(n=120, n_features=8, seed=0):
    """A response that depends on the sum of two of many feature columns."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        rng.uniform(-1, 1, (n, n_features)), columns=[f"f{i}" for i in range(n_features)]
    )
    return X, np.sin(2 * (X.f0 + X.f1)) + 0.05 * rng.normal(size=n)


def test_many_feature_columns_are_one_spatial_mode_by_default():
    X, y = _wide()
    X["day"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(X)) % 9, "D")
    with pytest.warns(FunBaTWarning, match="X has 8 numeric columns; they are fitted as one"):
        m = FunBaT(rank=2, max_iter=15, random_state=0).fit(X.iloc[:100], y[:100])
    assert m.modes_ == ["+".join(f"f{i}" for i in range(8)), "day"]  # the date stays a mode
    assert m.mode_kinds_ == ["spatial", "continuous"]
    rmse = np.sqrt(np.mean((m.predict(X.iloc[100:]) - y[100:]) ** 2))
    assert rmse < 0.5 * np.std(y[100:])  # the ten-mode product predicted the mean here
    # the same from an array: predict reads it the same way
    a = FunBaT(rank=2, max_iter=3, random_state=0)
    with pytest.warns(FunBaTWarning, match="one spatial mode 'x0\\+x1"):
        a.fit(X.iloc[:100, :8].to_numpy(), y[:100])
    assert a.predict(X.iloc[100:, :8].to_numpy()).shape == (20,)


def test_naming_the_modes_opts_out_of_joining_columns():
    X, y = _wide(n_features=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunBaTWarning)
        m = FunBaT(rank=1, max_iter=2, modes=list(X.columns), random_state=0).fit(X, y)
    assert len(m.modes_) == 6
    few = FunBaT(rank=1, max_iter=2, random_state=0).fit(X.iloc[:, :5], y)
    assert len(few.modes_) == 5  # five columns stay five modes


def test_many_columns_with_too_many_points_for_one_gp_are_refused():
    from funbat.dense import MAX_SPATIAL_POINTS

    X, y = _wide(n=MAX_SPATIAL_POINTS + 10, n_features=6)
    with pytest.raises(
        InputError, match="X has 6 numeric columns .* more than the 4,000 supported"
    ):
        FunBaT().fit(X, y)


def test_long_fits_print_progress_lines_off_a_terminal(monkeypatch, capsys):
    from funbat.cli._common import Progress

    monkeypatch.setattr(Progress, "EVERY", 0.0)
    bar = Progress(100, quiet=False)  # stderr is captured: not a terminal
    bar(3, -12.5)
    bar.close()
    assert "fit: sweep 3 of at most 100, ELBO -12.5" in capsys.readouterr().err
    quiet = Progress(100, quiet=True)
    quiet(3, -12.5)
    assert capsys.readouterr().err == ""


# -- the command line -----------------------------------------------------------------------


def _table(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"lat": rng.uniform(0, 10, n).round(2), "day": _dates(n),
                         "y": rng.normal(size=n).round(4)})  # fmt: skip


def test_cli_bad_date_cell_is_named_by_its_line(tmp_path, capsys):
    t = _table()
    t.loc[7, "day"] = "not a date"
    t.to_csv(tmp_path / "d.csv", index=False)
    code, _, err = run(capsys, "fit", tmp_path / "d.csv", "-t", "y", "-o", tmp_path / "m.funbat")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'day' is mostly dates but 1 of its 40 cells are not (line 9: 'not a date')" in err
    assert "--discrete day" in err
    assert not (tmp_path / "m.funbat").exists()


def test_cli_reports_bad_cells_before_missing_ones(tmp_path, capsys):
    t = _table().astype({"lat": object})
    t.loc[[3, 9], "lat"], t.loc[4, "lat"] = "?", np.nan
    t.to_csv(tmp_path / "s.csv", index=False)
    code, _, err = run(capsys, "fit", tmp_path / "s.csv", "-t", "y", "-o", tmp_path / "m.funbat")
    assert code == 2 and "'lat' is mostly numbers but 2 of its 40 cells" in err
    assert "--dropna" not in err


def test_cli_semicolon_csv_gets_a_delimiter_hint(tmp_path, capsys):
    _table().to_csv(tmp_path / "semi.csv", index=False, sep=";")
    code, _, err = run(capsys, "fit", tmp_path / "semi.csv", "-t", "y", "-o", tmp_path / "m.funbat")
    assert code == 2 and "seem separated by ';'" in err


@pytest.mark.parametrize("where", ["data", "output"])
def test_cli_too_long_path_is_one_line(tmp_path, capsys, where):
    _table().to_csv(tmp_path / "t.csv", index=False)
    long = tmp_path / ("a" * 300 + ".csv")
    data, out = (long, tmp_path / "m.funbat") if where == "data" else (tmp_path / "t.csv", long)
    code, _, err = run(capsys, "fit", data, "-t", "y", "-o", out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("funbat: error:") and "too long" in err


def test_cli_predict_with_missing_values_says_predict(once_and_thrice, tmp_path, capsys):
    d, once, _ = once_and_thrice
    once.save(tmp_path / "m.funbat")
    X = d.X.head(5).copy()
    X.loc[2, "x0"] = np.nan
    X.to_csv(tmp_path / "q.csv", index=False)
    code, _, err = run(capsys, "predict", tmp_path / "m.funbat", tmp_path / "q.csv", "-o",
                       tmp_path / "p.csv")  # fmt: skip
    assert code == 2 and "pass --dropna (or drop those rows) to predict without them" in err
    assert not (tmp_path / "p.csv").exists()


def test_evaluate_gives_each_warning_once_after_its_table(tmp_path, capsys):
    d = make_synthetic(40, n_unique=20, noise_std=0.1, seed=1)
    t = pd.concat([d.X.assign(y=d.y)] * 2, ignore_index=True)
    t.to_csv(tmp_path / "twice.csv", index=False)
    code, out, err = run(capsys, "evaluate", tmp_path / "twice.csv", "-t", "y", "--splits", "3",
                         "--max-iter", "3", "--rank", "1")  # fmt: skip
    assert code == 0 and out.strip().splitlines()[-1].lstrip().startswith("std")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rows repeat another row exactly" in lines[0]
    assert "(in 3 of 3 splits" in lines[0]
