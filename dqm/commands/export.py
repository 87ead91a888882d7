"""``dqm export`` — a run's (or one spill's) stored histograms as a ROOT file (TH1D/TH2D)."""

from __future__ import annotations

from pathlib import Path

from dqm.pipeline.runtime import load_default_specs, open_store


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a run's histograms to a ROOT file (TH1D/TH2D, titles and axis labels)"
    )
    p.add_argument("--run", type=int, required=True)
    p.add_argument(
        "--spill", type=int, help="only this spill (default: the run's closed spills summed)"
    )
    p.add_argument(
        "--per-spill",
        action="store_true",
        help="also every spill's histograms, in directories spill_NNNN",
    )
    p.add_argument("--out", required=True, help="ROOT file to write (replaced if it exists)")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    from dqm.report.rootio import export_run  # uproot: imported only by the commands that need it

    specs = load_default_specs(settings)
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            counts = export_run(
                session, specs, Path(args.out), args.run, spill=args.spill, per_spill=args.per_spill
            )
    what = f"spill {args.spill}" if args.spill is not None else f"{counts['spills']} spills summed"
    print(f"{args.out}: run {args.run} ({what}), {counts['histograms']} histograms")
    return 0
