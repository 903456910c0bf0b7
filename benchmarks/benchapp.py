"""foretell's ASGI app for a server that imports it by name (`uvicorn benchapp:app`, `pyvoy benchapp:app`).

Serves FORETELL_BENCH_MODELS (comma-separated URIs) from FORETELL_HOME, as `foretell serve` would.
"""

import os

from foretell.api.serving import create_server_app

app = create_server_app(os.environ["FORETELL_BENCH_MODELS"].split(","), home=os.environ["FORETELL_HOME"])
