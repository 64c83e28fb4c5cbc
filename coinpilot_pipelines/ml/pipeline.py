"""Train, register, and promote: one training round from stored candles to the model registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Engine

from coinpilot_pipelines.clients.mlflow_registry import CHALLENGER, CHAMPION, LoggedRun, ModelRegistry
from coinpilot_pipelines.features.candle_features import FEATURE_SET_VERSION
from coinpilot_pipelines.features.service import refresh_features
from coinpilot_pipelines.market.candles import SeriesKey, epoch_ms
from coinpilot_pipelines.ml.calibration import reliability_table
from coinpilot_pipelines.ml.labels import direction_labels
from coinpilot_pipelines.ml.baselines import CLIMATOLOGY, PREVIOUS_SIGN, brier_skill, climatology, previous_return_sign
from coinpilot_pipelines.ml.plots import probability_histogram, reliability_diagram
from coinpilot_pipelines.ml.promotion import HeldOut, PromotionDecision, PromotionPolicy, decide
from coinpilot_pipelines.ml.split import SplitWindows
from coinpilot_pipelines.ml.training import Dataset, TrainingSpec, build_dataset, fit, measure, predict_up, split
from coinpilot_pipelines.storage.candles import latest_open_time
from coinpilot_pipelines.storage.features import read_closes, read_features, store_labels
from coinpilot_pipelines.storage.models import promotion_lock, record_promotion
from coinpilot_pipelines.storage.runtime_state import champion_key, set_runtime_value


@dataclass
class TrainingOutcome:
    version: str
    run: LoggedRun
    window_start: datetime  # the training window asked for ...
    window_end: datetime
    data_start: datetime  # ... and the first and last bar it actually held
    data_end: datetime
    test: SplitWindows
    train_rows: int  # labelled bars the model was fitted on
    test_rows: int  # every held-out bar inference would score
    dead_band_rows: int  # of them, inside the dead band
    scores: pd.DataFrame  # held-out metrics per forecast: the challenger, its dead-band bars, champion, baselines
    decision: PromotionDecision
    champion_version: str | None  # after the decision
    features: tuple[str, ...]
    promotion_event_id: int
    histogram: Figure  # the challenger's held-out probabilities, by realized direction


def training_window(engine: Engine, series_list: Sequence[SeriesKey], days: int) -> tuple[datetime, datetime]:
    """The last ``days`` of stored candles (across the symbols), ending after the newest bar."""
    latest = [t for t in (latest_open_time(engine, s) for s in series_list) if t is not None]
    if not latest:
        raise ValueError("no candles are stored yet: materialize `candles` before training")
    end = max(latest) + series_list[0].interval.delta
    return end - timedelta(days=days), end


def load_dataset(engine: Engine, series_list: Sequence[SeriesKey], start: datetime, end: datetime,
                 spec: TrainingSpec, *, store: bool = False) -> Dataset:
    """The valid feature rows of ``[start, end)`` with their labels; ``store``: keep the labels too
    (training does, so they can be inspected; a calibration report only reads)."""
    labels = []
    for series in series_list:
        bars = read_closes(engine, series, start, end)
        series_labels = direction_labels(bars, series.interval.ms, spec.labels)
        if store:
            store_labels(engine, series, series_labels, version=spec.labels.version)
        labels.append(series_labels.assign(symbol=series.symbol))
    features = read_features(engine, series_list, start, end, valid_only=True)
    return build_dataset(features, pd.concat(labels, ignore_index=True))


def train_and_register(
    engine: Engine,
    registry: ModelRegistry,
    series_list: Sequence[SeriesKey],
    spec: TrainingSpec,
    policy: PromotionPolicy,
    *,
    now: datetime,
    dagster_run_id: str | None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainingOutcome:
    start, end = training_window(engine, series_list, spec.window_days)
    for series in series_list:
        run = refresh_features(engine, series, start, end, now=now)
        log(f"{series.symbol}: {run.valid_rows} of {run.rows} feature rows valid in the training window")
    dataset = load_dataset(engine, series_list, start, end, spec, store=True)
    if len(dataset) == 0:
        raise ValueError(f"no valid feature row with a known outcome in {start} .. {end}")
    interval = series_list[0].interval.delta
    train, test, windows = split(dataset, spec, interval)
    if len(test) == 0 or len(set(test.up)) < 2:
        raise ValueError(f"the held-out window {windows.test_start} .. {windows.test_end} has too few bars")
    fitted_rows = int(train.labelled.sum())
    log(f"training on {fitted_rows} labelled bars, evaluating on {len(test)} (purged {spec.labels.horizon_bars} bars)")
    model = fit(train, spec, interval)
    challenger_prob = predict_up(model, test.features)
    baselines = {CLIMATOLOGY: climatology(train.up, len(test)),
                 PREVIOUS_SIGN: previous_return_sign(train.features["ret_1"].to_numpy(), train.up,
                                                     test.features["ret_1"].to_numpy())}
    challenger = measure(test.up, challenger_prob)

    table = reliability_table(test.up, challenger_prob)
    histogram = probability_histogram(challenger_prob, test.up, "Held-out probabilities of an up move")
    registered, logged = registry.log_model_run(
        model=model,
        example=test.features.head(50),
        params={**spec.params(), "feature_set_version": FEATURE_SET_VERSION,
                "symbols": ",".join(s.symbol for s in series_list), "interval": series_list[0].interval.code,
                "window_start": start.isoformat(), "window_end": end.isoformat(),
                "test_start": windows.test_start.isoformat(), "test_end": windows.test_end.isoformat(),
                "train_rows": fitted_rows, "test_rows": len(test)},
        metrics={**{f"test_{k}": v for k, v in asdict(challenger).items()},
                 "test_brier_skill": brier_skill(test.up, challenger_prob, baselines[CLIMATOLOGY])},
        tags={"dagster_run_id": dagster_run_id or "", "feature_set_version": FEATURE_SET_VERSION},
        figures={"reliability_diagram.png": reliability_diagram({"held-out": table}, "Held-out calibration"),
                 "probability_histogram.png": histogram},
        table=table,
    )
    held_out = HeldOut(test.up, epoch_ms(test.times))
    log(f"registered version {registered.version}; deciding against the champion of this moment")
    with promotion_lock(engine, registry.model_name) as connection:
        champion = registry.alias_version(CHAMPION)
        champion_prob = predict_up(registry.load(champion.version), test.features) if champion else None
        decision = decide(held_out, challenger_prob, champion_prob, baselines[CLIMATOLOGY], policy)
        event_id = record_promotion(
            connection, decided_at=now, model_name=registry.model_name, challenger_version=registered.version,
            champion_version=champion.version if champion else None, promoted=decision.promote,
            reason=decision.reason, challenger_metrics=asdict(decision.challenger),
            champion_metrics=asdict(decision.champion) if decision.champion else None,
            auc_gain_ci_low=decision.auc_gain_ci[0] if decision.auc_gain_ci else None,
            auc_gain_ci_high=decision.auc_gain_ci[1] if decision.auc_gain_ci else None,
            brier_skill=decision.brier_skill, bootstrap_block_bars=decision.block_bars,
            brier_skill_ci_low=decision.brier_skill_ci[0] if decision.brier_skill_ci else None,
            brier_skill_ci_high=decision.brier_skill_ci[1] if decision.brier_skill_ci else None,
            eval_window_start=windows.test_start, eval_window_end=windows.test_end, dagster_run_id=dagster_run_id,
        )
        set_runtime_value(connection, champion_key(registry.model_name), registered.version if decision.promote else
                          (champion.version if champion else ""), now=now, dagster_run_id=dagster_run_id)
        # Recorded first, committed last: an alias that cannot be set rolls the record back.
        registry.set_alias(CHALLENGER, registered.version)
        if decision.promote:
            registry.set_alias(CHAMPION, registered.version)

    forecasts = {f"challenger v{registered.version}": challenger_prob, **baselines}
    if champion_prob is not None:
        forecasts[f"champion v{champion.version} (before)"] = champion_prob
    return TrainingOutcome(
        version=registered.version, run=logged, window_start=start, window_end=end,
        data_start=dataset.times.min().to_pydatetime(), data_end=dataset.times.max().to_pydatetime(),
        test=windows, train_rows=fitted_rows, test_rows=len(test),
        dead_band_rows=int((~test.labelled).sum()), scores=score_table(test, forecasts, baselines[CLIMATOLOGY]),
        decision=decision,
        champion_version=registered.version if decision.promote else (champion.version if champion else None),
        features=spec.features, promotion_event_id=event_id, histogram=histogram,
    )


def score_table(test: Dataset, forecasts: dict[str, np.ndarray], climatology_prob: np.ndarray) -> pd.DataFrame:
    """Held-out metrics of each forecast on every bar, and of the first (the challenger) on the
    dead-band bars alone, with Brier skill against climatology."""
    challenger = next(iter(forecasts))
    rows = {name: (prob, np.ones(len(test), dtype=bool)) for name, prob in forecasts.items()}
    rows[f"{challenger}: dead-band bars only"] = (forecasts[challenger], ~test.labelled)
    table = {}
    for name, (prob, mask) in rows.items():
        if not mask.any():
            continue
        table[name] = {**asdict(measure(test.up[mask], prob[mask])),
                       "brier_skill": brier_skill(test.up[mask], prob[mask], climatology_prob[mask])}
    return pd.DataFrame(table).T
