"""A made-up finished run of any size, for the report's tests: stages with their windows, steps
that went through their phases (some skipped, some failed), times consistent with the windows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FAILED_REASON = "prestaging-packages: Prestaging packages failed for subcloud {cloud}"


def stamp(moment: datetime) -> str:
    """A timestamp as the strategy records them (model.now's format)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def synthetic_strategy(count: int, seed: int = 18) -> model.Strategy:
    """count steps in three stages (a parallel group of window 50, a serial one, the rest at
    250); about 1 in 20 skipped and 1 in 20 failed in packages, each step starting when a place
    in its stage's window frees up, stage after stage."""
    rnd = random.Random(seed)
    stages = [
        model.Stage(1, "First", "parallel", 50),
        model.Stage(2, "Second", "serial", 1),
        model.Stage(3, "Rest", "parallel", 250),
    ]
    first, second = int(count * 0.6), int(count * 0.62)
    steps = [
        model.Step(
            cloud=f"subcloud{index + 1}",
            stage=1 if index < first else 2 if index < second else 3,
            created_at=stamp(T0),
        )
        for index in range(count)
    ]
    moment = T0
    for stage in stages:
        free = [moment] * stage.window  # when each place of the window is free again
        for step in (s for s in steps if s.stage == stage.number):
            place = min(range(len(free)), key=free.__getitem__)
            start = free[place]
            precheck, packages, images = (
                rnd.uniform(1, 5),
                rnd.uniform(10, 60),
                rnd.uniform(20, 120),
            )
            draw = rnd.random()
            if draw < 0.05:
                marks = [(model.STEP_PRECHECK, 0.0), (model.STEP_COMPLETE, precheck)]
                step.details = model.skip_details(step.cloud, "already prestaged")
            elif draw < 0.10:
                marks = [
                    (model.STEP_PRECHECK, 0.0),
                    (model.STEP_PACKAGES, precheck),
                    (model.STEP_FAILED, precheck + packages),
                ]
                step.details = FAILED_REASON.format(cloud=step.cloud)
            else:
                marks = [
                    (model.STEP_PRECHECK, 0.0),
                    (model.STEP_PACKAGES, precheck),
                    (model.STEP_IMAGES, precheck + packages),
                    (model.STEP_COMPLETE, precheck + packages + images),
                ]
            step.phases = [model.Phase(state, round(offset, 3)) for state, offset in marks]
            step.state = marks[-1][0]
            end = start + timedelta(seconds=step.phases[-1].offset)
            step.started_at, step.finished_at, step.updated_at = (
                stamp(start),
                stamp(end),
                stamp(end),
            )
            free[place] = end
        moment = max(free)
    failed = any(step.state == model.STEP_FAILED for step in steps)
    return model.Strategy(
        release="25.09", for_sw_deploy=False, subcloud_apply_type=None,
        max_parallel_subclouds=None, stop_on_failure=False, force=False, cloud_name=None,
        group=None, stages=stages, steps=steps,
        state=model.FAILED if failed else model.COMPLETE,
        created_at=stamp(T0 - timedelta(minutes=1)), updated_at=stamp(moment),
    )  # fmt: skip
