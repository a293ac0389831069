"""`python -m glue_bench.train --spec S --output-dir D`: one rank of one job (what executors and torchrun start)."""

import sys

from glue_bench.train import stop

stop.install()  # before torch loads: a stop signal during start-up is not lost

from glue_bench.train.recipe import cli  # noqa: E402

sys.exit(cli())
