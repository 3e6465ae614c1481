"""`phoenix serve` with its OTLP/gRPC receiver on 127.0.0.1 instead of every interface.

Phoenix has no setting for the gRPC receiver's address: it always binds `[::]:PORT`
(`phoenix/server/grpc_server.py`, `server.add_insecure_port(f"[::]:{self._port}")`), whatever
PHOENIX_HOST says, and the only switch that turns it off (read-only mode) also refuses
OTLP/HTTP. The tests start everything on loopback, so this launcher rewrites that one bind
address before Phoenix starts; tests/backends.rs checks that nothing listens beyond 127.0.0.1.
"""
import sys

import grpc.aio._server as aio_server

_add_insecure_port = aio_server.Server.add_insecure_port


def _loopback(self, address):
    if address.startswith("[::]:"):
        address = "127.0.0.1:" + address[len("[::]:"):]
    return _add_insecure_port(self, address)


aio_server.Server.add_insecure_port = _loopback

from phoenix.server.main import main  # noqa: E402  (after the patch, on purpose)

sys.argv = ["phoenix", "serve"]
sys.exit(main())
