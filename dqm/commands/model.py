"""``dqm model`` — train, list and show the learned anomaly models (issue 14).

``train`` fits one PCA model per subsystem (those whose specs declare a ``pca_score``
check, or ``--subsystem``) on the good spills of a beam configuration (certified good
where certifications exist, else those with no WARNING or worse), calibrates its threshold
on a held-out third of them to ``--false-alarm`` per spill, and stores it as the next,
active version with who trained it on which spills. ``list`` and ``show`` print that
provenance: training spills, date, who, score distributions, threshold and its band.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC

from dqm.errors import DQMError

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    p = sub.add_parser("model", help="train, list or show the learned anomaly models")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    t = msub.add_parser(
        "train", help="train a model per subsystem on a beam configuration's good spills"
    )
    t.add_argument("--beam-config", required=True, help="beam configuration, e.g. mu160")
    t.add_argument("--runs", default=None, help="run range A-B (default: every run of it)")
    t.add_argument("--subsystem", default=None, help="only this subsystem")
    t.add_argument(
        "--false-alarm", type=float, default=1e-3, help="false alarms per spill (default 0.001)"
    )
    t.add_argument("--components", type=int, default=5, help="principal components kept")
    t.add_argument("--user", default=None, help="who trains it (default: $DQM_USER, else login)")
    t.add_argument("--comment", default="", help="why (stored with the model)")
    t.set_defaults(func=run_train)
    lst = msub.add_parser("list", help="every stored model, newest first")
    lst.add_argument("--beam-config", default=None)
    lst.set_defaults(func=run_list)
    sh = msub.add_parser("show", help="one model's provenance, scores and threshold")
    sh.add_argument("id", type=int, metavar="ID")
    sh.set_defaults(func=run_show)


def _runs(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError as error:
        raise DQMError(f"--runs {text!r}: expected A-B (run numbers)") from error


def _user(args) -> str:
    return args.user or os.environ.get("DQM_USER") or getpass.getuser()


def _subsystems(specs, only: str | None) -> list[str]:
    declared = sorted({s.subsystem for s in specs for c in s.checks if c.type == "pca_score"})
    if only is None:
        if not declared:
            raise DQMError("no spec declares a pca_score check: name one with --subsystem")
        return declared
    if only not in {s.subsystem for s in specs}:
        raise DQMError(f"unknown subsystem {only!r}")
    return [only]


def run_train(args, settings) -> int:
    from dqm.learn.train import spec_layout, train_model
    from dqm.pipeline.runtime import load_default_specs
    from dqm.store import open_store
    from dqm.store.learned import good_spills, spill_ranges, store_model
    from dqm.store.spills import spill_histograms

    specs = load_default_specs(settings)
    runs = _runs(args.runs)
    trained = 0
    with open_store(settings) as store:
        for subsystem in _subsystems(specs, args.subsystem):
            with store.sessions.begin() as session:
                spills = good_spills(session, args.beam_config, subsystem, runs)
                hists = [spill_histograms(session, sp.id) for sp in spills]
                if not hists:
                    print(f"{subsystem}: no good spills of {args.beam_config}: not trained")
                    continue
                layout = spec_layout(specs, subsystem, hists[0])
                try:
                    result = train_model(
                        hists,
                        layout,
                        subsystem=subsystem,
                        beam_config=args.beam_config,
                        false_alarm=args.false_alarm,
                        n_components=args.components,
                    )
                except ValueError as error:
                    print(f"{subsystem}: not trained: {error}")
                    continue
                keys = [(sp.run, sp.spill) for sp in spills]
                row = store_model(
                    session,
                    result.model,
                    created_by=_user(args),
                    comment=args.comment,
                    training={
                        "train": spill_ranges(keys[i] for i in result.train),
                        "holdout": spill_ranges(keys[i] for i in result.holdout),
                        "runs": list(runs) if runs else None,
                        "selection": "certified good, else no WARNING or worse",
                        "n_components": int(result.model.components.shape[0]),
                        "histograms": [item.title for item in result.model.layout],
                    },
                    n_train=len(result.train),
                    n_holdout=len(result.holdout),
                    scores=result.scores(),
                    calibration=result.calibration.to_dict(),
                )
                print(
                    f"model {row.id}: {subsystem} {args.beam_config} v{row.version}, "
                    f"{row.n_train} training + {row.n_holdout} held-out spills, "
                    f"score {result.calibration.words()}"
                    + (
                        f"; largest per-histogram excess {result.histogram_calibration.words()}"
                        if result.histogram_calibration
                        else ""
                    )
                )
                trained += 1
    return 0 if trained else 1


def _when(ts) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def run_list(args, settings) -> int:
    from dqm.store import open_store
    from dqm.store.learned import list_models

    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            rows = list_models(session, args.beam_config)
            if not rows:
                print("no learned models (train one: dqm model train --beam-config C)")
                return 0
            print(
                f"{'id':<3} {'subsystem':<12} {'beam':<10} {'ver':<4} {'active':<7} "
                f"{'trained by, at':<29} {'n_train':<8} threshold"
            )
            for r in rows:
                print(
                    f"{r.id:<3} {r.subsystem:<12} {r.beam_config:<10} {r.version:<4} "
                    f"{'yes' if r.active else 'no':<7} "
                    f"{r.created_by + ', ' + _when(r.created_at):<29} "
                    f"{r.n_train:<8} {r.threshold:.3g}"
                )
    return 0


def _ranges(ranges) -> str:
    parts = [f"{run}:{a}" if a == b else f"{run}:{a}-{b}" for run, a, b in ranges or []]
    return ", ".join(parts) if len(parts) <= 12 else ", ".join(parts[:12]) + f", … ({len(parts)})"


def _summary(s: dict) -> str:
    if not s or not s.get("n"):
        return "-"
    return (
        f"n={s['n']} mean {s['mean']:.3g} ± {s['std']:.2g}, median {s['median']:.3g}, "
        f"p90 {s['p90']:.3g}, p99 {s['p99']:.3g}, max {s['max']:.3g}"
    )


def run_show(args, settings) -> int:
    from dqm.learn.calibrate import Calibration
    from dqm.store import open_store
    from dqm.store.learned import model_row

    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            r = model_row(session, args.id)
            if r is None:
                raise DQMError(f"no model {args.id} (dqm model list)")
            cal = {k: v for k, v in (r.calibration or {}).items() if k != "info"}
            info = (r.calibration or {}).get("info") or {}
            print(
                f"model {r.id}: {r.kind} of {r.subsystem} under {r.beam_config}, version "
                f"{r.version} ({'active' if r.active else 'inactive'})"
            )
            print(
                f"  trained by {r.created_by} at {_when(r.created_at)}"
                + (f": {r.comment}" if r.comment else "")
            )
            training = r.training or {}
            print(f"  selection: {training.get('selection', '-')}")
            print(f"  histograms: {', '.join(training.get('histograms') or [])}")
            print(
                f"  components: {training.get('n_components')} (explained variance "
                f"{', '.join(f'{v:.2f}' for v in info.get('explained_variance_ratio', []))})"
            )
            print(f"  training spills ({r.n_train}): {_ranges(training.get('train'))}")
            print(f"  held-out spills ({r.n_holdout}): {_ranges(training.get('holdout'))}")
            print(f"  scores, training: {_summary((r.scores or {}).get('train', {}))}")
            print(f"  scores, held out: {_summary((r.scores or {}).get('holdout', {}))}")
            try:
                print(f"  {Calibration(**cal).words()}")
            except TypeError:
                print(
                    f"  threshold {r.threshold:.3g} for {100 * r.false_alarm:.3g} % false "
                    "alarms per spill"
                )
            print(f"  method: {cal.get('method', '-')}")
            per_histogram = info.get("histogram_calibration")
            if per_histogram:
                held = (r.scores or {}).get("holdout_histogram_excess", {})
                print(f"  largest per-histogram excess, held out: {_summary(held)}")
                print(f"  its {Calibration(**per_histogram).words()}")
    return 0
