# SPDX-License-Identifier: Apache-2.0
"""The Locust user that sends KServe v2 gRPC requests, and the load shape chosen by ``--shape``.

``loadtest/locustfile.py`` imports both; Locust finds them there. Each request is reported with Locust's request
event, named ``<model>/<kind>`` (kind: unary or stream) with method ``grpc``, its response time in milliseconds
(from sending to the answer, or to the final response of a stream; checking the answer is not timed) and, on
failure, an exception whose text is the reason.
"""

from __future__ import annotations

import random
import time

from locust import LoadTestShape, User, task
from locust.exception import StopUser

from ..errors import TritonDynamoError
from .config import LoadConfig
from .locust_plugin import REQUEST_TYPE, RUN
from .plan import Prepared
from .shapes import StepSchedule, schedule_for
from .wire import RequestFailed, decode_response, infer, response_bytes, stream

__all__ = ["KServeUser", "SelectedShape"]


class WrongAnswer(TritonDynamoError):
    """The server answered, but not what the model should have answered."""

    def __str__(self) -> str:
        # Locust groups failures by str(): "wrong answer from MODEL: what", nothing more
        return self.message


class KServeUser(User):
    """One client: sends requests one after the other (with ``--think-time-s`` between), to models picked by weight."""

    def wait_time(self) -> float:
        return RUN.config.think_time_s if RUN.config else 0.0

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def send(self) -> None:
        plan, connections = RUN.plan, RUN.connections
        if plan is None or connections is None:
            raise StopUser()  # the plan could not be built (logged) and the process is quitting
        target = plan.pick(self.rng)
        prepared = target.next_request()
        timeout_s = RUN.config.request_timeout_s
        call = stream if target.kind == "stream" else infer
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            responses, answered = call(connections.next_stub(), prepared.request, timeout_s)
        except RequestFailed as exc:
            answered, exception = time.perf_counter(), exc
        else:
            length = sum(response_bytes(r) for r in responses)
            exception = self.check(target.model, prepared, responses)
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=target.name,
            response_time=(answered - started) * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )

    @staticmethod
    def check(model: str, prepared: Prepared, responses: list) -> WrongAnswer | None:
        """With --check, what is wrong with the answer (None: nothing, or not checked)."""
        checker = RUN.checker
        if checker is None or not checker.can_check(model, prepared.expected):
            return None
        try:
            outputs = [decode_response(r) for r in responses]
        except (TritonDynamoError, ValueError) as exc:
            return WrongAnswer(f"undecodable answer from {model}: {exc}")
        problem = checker.check(model, prepared.inputs, outputs, prepared.expected)
        return None if problem is None else WrongAnswer(problem)


class SelectedShape(LoadTestShape):
    """Locust's shape hook, asking the schedule of ``--shape`` (constant by default: Locust's -u, -r, -t)."""

    use_common_options = True  # -u, -r and -t stay meaningful: the schedules read them

    def __init__(self) -> None:
        super().__init__()
        self._last_step: int | None = None

    def reset_time(self) -> None:
        """Called when a shape test starts, before the first tick."""
        super().reset_time()
        self._last_step = None
        RUN.steps.clear()
        RUN.shape_ended_s = None

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        config = RUN.config or LoadConfig.from_options(options)
        schedule = schedule_for(config, options)
        elapsed_s = self.get_run_time()
        tick = schedule.tick(elapsed_s)
        if tick is None:
            if RUN.shape_ended_s is None:
                RUN.shape_ended_s = time.time()
            return None
        if isinstance(schedule, StepSchedule):
            step = schedule.step_at(elapsed_s)
            if step != self._last_step:
                self._last_step = step
                RUN.steps.append((step, tick[0], time.time()))
        return tick
