"""Federated learning with pruning on Flower: devices (Flower NumPyClients) holding their own
data, server strategies (FedAvg and pruning/quantisation strategies of the literature) with
traffic accounting, bad-update rejection and checkpoints, in-process simulation through
Flower's server loop, and real server/client processes over gRPC. Needs `pip install flwr`
(extra `edgeprune[federated]`)."""
