from glue_bench.cli import main

main()
