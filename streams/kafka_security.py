"""TLS and SASL of every Kafka client in this process, from ``[kafka]``'s security settings.

Why process-wide: the runtime builds its aiokafka clients in many places (the worker's stages, the
re-keying child, ``twin cm serve``, ``twin replay``, ``twin alerts list``, the incarnation check)
and hands them only a bootstrap string. Rather than thread a connection object through every
constructor, the settings loader of the commands (``streams.commands._settings``, used by ``twin
run``, the re-keying child it spawns, ``twin cm serve`` and ``twin alerts``; ``replay.commands``)
calls :func:`configure` once, and ``streams.kafka_io`` asks :func:`security_for` each time it
builds a client, so no client can be built without it. The embedded broker (Tansu, started by
``streams.broker.EmbeddedBroker``) speaks PLAINTEXT only: it registers its address with
:func:`plaintext`, and clients of that address stay plaintext whatever ``[kafka]`` says.

>>> from twin.config import KafkaSettings
>>> client_security(KafkaSettings())
{'security_protocol': 'PLAINTEXT'}
>>> sasl = client_security(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
...                                      sasl_username="twin", sasl_password="pw"))
>>> sorted(sasl)
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="twin")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for KafkaSettings
  Value error, kafka.sasl_password is required with kafka.security_protocol=SASL_SSL (give it as ...
...
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

from aiokafka.helpers import create_ssl_context

from twin.config import KafkaSettings

__all__ = ["client_security", "configure", "configured", "plaintext", "reset", "security_for"]

_lock = threading.Lock()
_active: KafkaSettings | None = None
_plaintext: set[str] = set()


def client_security(kafka: KafkaSettings) -> dict[str, Any]:
    """The aiokafka keyword arguments (producer, consumer, admin client alike) of ``kafka``'s
    security settings: ``security_protocol``, and ``ssl_context`` for SSL/SASL_SSL, ``sasl_*`` for
    SASL_*. A CA, certificate or key file that OpenSSL cannot read is an error naming the field."""
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None  # KafkaSettings validates SASL_* complete
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return options


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    try:
        context = create_ssl_context(cafile=kafka.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"kafka.ssl_cafile {kafka.ssl_cafile}: not a readable PEM CA file ({exc})") from exc
    if kafka.ssl_certfile is not None:
        try:
            context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"kafka.ssl_certfile {kafka.ssl_certfile} / kafka.ssl_keyfile {kafka.ssl_keyfile}: "
                             f"not a matching PEM certificate and key ({exc})") from exc
    context.check_hostname = kafka.ssl_check_hostname
    return context


def configure(kafka: KafkaSettings) -> None:
    """Make ``kafka``'s security the one of every client this process builds from now on (the SSL
    context is built here, so a bad CA file fails at start, not at the first connection)."""
    global _active
    client_security(kafka)  # fail now on unreadable files
    with _lock:
        _active = kafka


def configured() -> KafkaSettings | None:
    """The settings :func:`configure` was last given (``None``: plaintext)."""
    return _active


def plaintext(bootstrap_servers: str) -> None:
    """Clients of ``bootstrap_servers`` (the embedded broker's address) stay PLAINTEXT."""
    with _lock:
        _plaintext.add(bootstrap_servers)


def reset() -> None:
    """Forget :func:`configure` and :func:`plaintext` (tests)."""
    global _active
    with _lock:
        _active = None
        _plaintext.clear()


def security_for(bootstrap_servers: str) -> dict[str, Any]:
    """The security keyword arguments of a client of ``bootstrap_servers`` (a fresh SSL context each
    time: aiokafka clients do not share one)."""
    with _lock:
        active = _active
        exempt = bootstrap_servers in _plaintext
    if active is None or exempt:
        return {"security_protocol": "PLAINTEXT"}
    return client_security(active)
