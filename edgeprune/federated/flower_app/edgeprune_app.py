"""The ServerApp and ClientApp of edgeprune's Flower App: thin wrappers around
edgeprune.federated.deploy, which builds the same strategy and device code simulation uses."""
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from edgeprune.federated.deploy import client_fn, server_fn

server_app = ServerApp(server_fn=server_fn)
client_app = ClientApp(client_fn=client_fn)
