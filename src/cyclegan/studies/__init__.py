"""Studies: variants of a model trained and scored by the commands a user would type.

- `suites`: `cyclegan experiment`, the named suites of variants (the paper's ablation, lambda and
  d_ratio sweeps, pix2pix, precision, the optional improvements) trained under one budget and
  evaluated, with results.md / results.csv / commands.sh.
- `seeded`: `cyclegan study`, a suite over several seeds with every variant compared with a
  baseline beyond the run-to-run noise (study.md / study.json / loss_curves.png).
- `comparison`: the statistics both the study and the benchmark scripts judge by.

Nothing below the CLI imports this package; it drives the library through subprocesses.
"""
