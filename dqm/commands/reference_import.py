"""``dqm reference import FILE.root --run N`` — make histograms from a ROOT file the reference.

For references made elsewhere (an offline reprocessing, another site). Histograms
named like the specs are read onto the specs' binning (a mismatch is an error that
names both); the import is audited like any reference change.
Registered under ``dqm reference`` by :mod:`dqm.commands.reference`.
"""

from __future__ import annotations

import getpass

from dqm.pipeline.runtime import load_default_specs, open_store
from dqm.store.references import DEFAULT_BEAM_CONFIG, import_reference


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import", help="import a reference from a ROOT file (e.g. one written by dqm export)"
    )
    p.add_argument("file", help="ROOT file with TH1/TH2 named like the spec histograms")
    p.add_argument("--run", type=int, required=True, help="run number the reference stands for")
    p.add_argument(
        "--beam-config",
        default=DEFAULT_BEAM_CONFIG,
        help=f"beam configuration it serves (default {DEFAULT_BEAM_CONFIG})",
    )
    p.add_argument(
        "--directory", default="", help="ROOT directory holding the histograms (default: top level)"
    )
    p.add_argument("--user", default=None, help="who imports it (default: the login name)")
    p.add_argument("--comment", default="", help="why (kept in the audit log)")
    p.add_argument(
        "--force",
        action="store_true",
        help="import even if RUN is stored with conditions of another beam configuration",
    )
    p.set_defaults(func=run)


def run(args, settings) -> int:
    from dqm.report.rootio import (  # uproot: imported only by the commands that need it
        read_root_histograms,
        unknown_errors,
    )

    specs = load_default_specs(settings)
    hists = read_root_histograms(args.file, specs, directory=args.directory)
    with open_store(settings) as store:
        with store.sessions.begin() as session:
            ref = import_reference(
                session,
                hists,
                args.run,
                args.user or getpass.getuser(),
                beam_config=args.beam_config,
                comment=args.comment or f"imported from {args.file}",
                force=args.force,
            )
            ref_id = ref.id
    missing = [s.name for s in specs if s.name not in hists]
    for name in unknown_errors(hists):
        print(
            f"warning: {name} has non-integer contents and no errors (no Sumw2 in the file): "
            "the shape checks will refuse it (CHECK_ERROR) — export it with Sumw2 or as counts"
        )
    print(
        f"reference {ref_id}: run {args.run} for beam '{args.beam_config}' from {args.file}: "
        f"{len(hists)} histograms"
        + (f"; not in the file (no reference for them): {', '.join(missing)}" if missing else "")
    )
    return 0
