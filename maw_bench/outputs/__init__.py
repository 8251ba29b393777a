"""What maw-bench writes and reads back: the output layout and folder ownership, tables, plots, run records
and the study summary (the repository's output folder ``results/`` holds what these write)."""
