"""The nsvisor benchmark harness: drives nsvisor and its peers through the same
workloads, interleaved, and writes every raw figure to a JSON file.

Entry point: ``bench/run.sh`` (which builds, installs the peers and then runs
``python3 -m nsbench.main``); ``nsbench.report`` turns the JSON into
``docs/benchmarks.md`` and its chart. Standard library only, except the chart
(matplotlib, optional).
"""
