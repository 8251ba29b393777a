from maw_bench.cli import main

main()
