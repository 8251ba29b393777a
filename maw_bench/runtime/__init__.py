"""What every layer leans on and none owns: atomic writes and locks, paths, the console and progress bars,
random-state snapshots, the process group of a distributed run, and the hardware's precision choice."""
