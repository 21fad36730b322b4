"""A one-step job in the `image_models` pool, for the kill -9 test: the step sleeps `seconds`."""

import time

import dagster as dg

from resources.instance import IMAGE_MODELS_POOL


class Nap(dg.Config):
    seconds: float = 0.1


@dg.op(pool=IMAGE_MODELS_POOL)
def pooled_step(config: Nap) -> None:
    time.sleep(config.seconds)


@dg.job
def pooled() -> None:
    pooled_step()


defs = dg.Definitions(jobs=[pooled])
