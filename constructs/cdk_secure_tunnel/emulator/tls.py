"""A throwaway certificate authority and server certificate for the data plane's ``wss://``.

The real endpoint is TLS only; clients that insist on TLS (the reference local proxy) connect to the
emulator by trusting ``ca_file`` (or with host verification off). Keys are ECDSA P-256, generated at start
in a private temporary directory that ``remove()`` deletes.

>>> credentials = ServerCredentials.generate(["127.0.0.1", "localhost"])
>>> context = credentials.server_context()
>>> Path(credentials.ca_file).name
'ca.pem'
>>> credentials.remove()
"""

import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

CA_NAME = "cdk-secure-tunnel emulator CA"
VALIDITY = timedelta(days=2)


@dataclass(frozen=True)
class ServerCredentials:
    directory: Path

    @property
    def ca_file(self) -> str:
        """The CA certificate (PEM) a client trusts to verify the data plane."""
        return str(self.directory / "ca.pem")

    @property
    def certificate_file(self) -> str:
        return str(self.directory / "server.pem")

    @property
    def key_file(self) -> str:
        return str(self.directory / "server.key")

    @classmethod
    def generate(cls, hosts: list[str]) -> "ServerCredentials":
        """A CA and a certificate it signs for ``hosts`` (names or IP addresses), in a new directory."""
        # cryptography comes with the testing extra; only a TLS data plane needs it.
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

        now = datetime.now(UTC) - timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        credentials = cls(Path(tempfile.mkdtemp(prefix="cdk-secure-tunnel-tls-")))
        pem = serialization.Encoding.PEM
        Path(credentials.ca_file).write_bytes(ca.public_bytes(pem))
        Path(credentials.certificate_file).write_bytes(certificate.public_bytes(pem))
        key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        Path(credentials.key_file).write_bytes(key_bytes)
        return credentials

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later, as the service requires (the reference proxy disables anything older)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA, host verification on: what a test connects with."""
        return ssl.create_default_context(cafile=self.ca_file)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
