"""Federated runs on one machine through Flower's own server loop (flwr.server.Server: client
sampling, fit rounds with a thread pool, timeouts, failure handling), with each client behind
an in-process ClientProxy instead of a network connection. The same strategy and client code
run over gRPC in `edgeprune.federated.deploy`."""
from __future__ import annotations

import concurrent.futures
import logging

from flwr.common import (
    Code,
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    GetPropertiesRes,
    ReconnectIns,
    Status,
)
from flwr.server import Server, SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from edgeprune.federated.client import EdgeClient
from edgeprune.federated.strategy import EdgeStrategy


class InProcessProxy(ClientProxy):
    """A ClientProxy that calls a local Flower client; `timeout` is enforced with a worker thread."""

    def __init__(self, client: EdgeClient):
        super().__init__(client.cid)
        self.client = client.to_client()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def _call(self, fn, ins, timeout):
        future = self._pool.submit(fn, ins)
        return future.result(timeout=timeout)

    def get_properties(self, ins: GetPropertiesIns, timeout, group_id) -> GetPropertiesRes:
        return GetPropertiesRes(Status(Code.OK, ""), {})

    def get_parameters(self, ins: GetParametersIns, timeout, group_id) -> GetParametersRes:
        return self._call(self.client.get_parameters, ins, timeout)

    def fit(self, ins: FitIns, timeout, group_id) -> FitRes:
        return self._call(self.client.fit, ins, timeout)

    def evaluate(self, ins: EvaluateIns, timeout, group_id) -> EvaluateRes:
        return self._call(self.client.evaluate, ins, timeout)

    def reconnect(self, ins: ReconnectIns, timeout, group_id) -> DisconnectRes:
        return DisconnectRes(reason="")


def simulate(clients: list[EdgeClient], strategy: EdgeStrategy, rounds: int, round_timeout: float | None = None,
             workers: int = 2, quiet: bool = True):
    """Run `rounds` rounds (after any rounds a resumed strategy already did); returns its history."""
    if quiet:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    manager = SimpleClientManager()
    for c in clients:
        manager.register(InProcessProxy(c))
    server = Server(client_manager=manager, strategy=strategy)
    server.set_max_workers(workers)
    remaining = rounds - strategy.done_rounds
    if remaining > 0:
        server.fit(num_rounds=remaining, timeout=round_timeout)
    return strategy.history
