"""The compute-only window's stopping rule (timing.window_complete): seconds and a precise mean, both bounded."""
import pytest

from paramount_trainer.timing import (WINDOW_MAX_FACTOR, WINDOW_MAX_STEPS, WINDOW_MIN_STEPS, t_quantile_975,
                                      window_complete)


def test_even_steps_stop_at_the_requested_seconds():
    steps = [0.5] * 8
    assert not window_complete(steps, 3.9, 4.0)
    assert window_complete(steps, 4.0, 4.0)


def test_at_least_the_minimum_steps_however_long_they_take():
    steps = [2.0] * (WINDOW_MIN_STEPS - 1)
    assert not window_complete(steps, 2.0 * len(steps), 4.0)
    assert window_complete(steps + [2.0], 2.0 * WINDOW_MIN_STEPS, 4.0)


def test_uneven_steps_go_on_until_the_mean_is_precise():
    # a 0.15 share under a 100 ms quota period: a step of 17 or 19 periods, by where it starts
    uneven = [1.9, 1.7, 1.9, 1.7]
    assert not window_complete(uneven, 7.2, 4.0)
    # twelve rated steps: the 95% interval of their mean, 2.20 x 0.030 s, is within 4% of it (1.8 s), before the cap
    longer = [1.9] + [1.7, 1.9] * 6
    assert window_complete(longer, 11.9, 4.0)
    assert not window_complete(longer[:-4], 11.9 - 7.2, 4.0)


def test_a_few_even_steps_by_chance_do_not_end_the_window():
    """Three rated steps within 5% of each other: a standard error of 1.5% (a normal interval of +-2.9%) would
    stop here, but a standard deviation from three steps is itself unsure, and Student's t (4.30 for 2 degrees
    of freedom) keeps the window going while its interval (+-6.5%) is wider than 4%."""
    steps = [1.6, 1.43, 1.44, 1.50]
    assert not window_complete(steps, 5.9, 4.0)
    assert window_complete([1.6, 1.43, 1.44, 1.435], 5.9, 4.0)


@pytest.mark.parametrize("df,expected", [(1, 12.706), (2, 4.303), (11, 2.228), (29, 2.086), (61, 1.96)])
def test_t_quantiles_are_the_tables_entry_at_or_below(df, expected):
    assert t_quantile_975(df) == expected


@pytest.mark.parametrize("elapsed,expected", [(WINDOW_MAX_FACTOR * 4.0 - 0.1, False), (WINDOW_MAX_FACTOR * 4.0, True)])
def test_uneven_steps_stop_at_the_time_cap(elapsed, expected):
    wild = [1.0, 0.5, 3.0, 0.5, 3.0]
    assert window_complete(wild, elapsed, 4.0) is expected


def test_never_more_than_the_maximum_steps():
    wild = [0.01, 0.001, 0.03] * WINDOW_MAX_STEPS
    assert not window_complete(wild[:WINDOW_MAX_STEPS - 1], 0.5, 4.0)
    assert window_complete(wild[:WINDOW_MAX_STEPS], 0.5, 4.0)
