"""TLS for HTTP and gRPC: the certificate and its key, checked once before anything listens."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from foretell.errors import InvalidInput
from foretell.serving.config import ServeConfig

__all__ = ["TlsFiles", "tls_files"]


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and its private key, both PEM files that load together."""

    certfile: str
    keyfile: str

    def key_and_chain(self) -> tuple[bytes, bytes]:
        """The key and the chain as bytes, as grpc's server credentials take them."""
        return Path(self.keyfile).read_bytes(), Path(self.certfile).read_bytes()


def tls_files(config: ServeConfig) -> TlsFiles | None:
    """`config`'s TLS files once they are known to load (None: plain text), else `InvalidInput` saying why.

    uvicorn and grpc would each refuse a bad pair only once started, uvicorn with a traceback
    and grpc with a bare "could not bind": checked here first, the error names the files.
    """
    if config.ssl_certfile is None or config.ssl_keyfile is None:
        return None
    for setting, path in (("ssl_certfile", config.ssl_certfile), ("ssl_keyfile", config.ssl_keyfile)):
        if not Path(path).is_file():
            raise InvalidInput(f"{setting}: no file at {path!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password=_no_password)
    except ssl.SSLError as exc:
        raise InvalidInput(
            f"ssl_certfile {config.ssl_certfile!r} and ssl_keyfile {config.ssl_keyfile!r} must be a PEM certificate "
            f"chain and its unencrypted private key ({exc.reason or exc})"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"ssl_certfile / ssl_keyfile: {exc}") from None
    return TlsFiles(config.ssl_certfile, config.ssl_keyfile)


def _no_password() -> str:
    """Asked only for an encrypted key: refused rather than prompted for on the terminal."""
    raise ValueError("the private key is encrypted; give an unencrypted key (the server cannot ask for a password)")
