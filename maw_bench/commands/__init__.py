"""What the commands do beyond parsing their options (``maw_bench.cli``): smoke, study, sweep, launch, report.

Each module is the implementation of one command, callable from Python with a typed config.
"""
